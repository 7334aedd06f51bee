Feature: sampling
  The sampling parameters an engine accepts do what they say: top_k 1 leaves
  one candidate (so sampling is greedy), and a seed chooses what is sampled.

  Background:
    Given the engine under test

  @check:sampling.greedy_is_top_k_1 @needs_top_k @needs_sampling
  Scenario: temperature 0 and top_k 1 give the same tokens
    When I stream a completion of 24 tokens greedily and again at temperature 1 with top_k 1
    Then both give the same tokens

  @check:sampling.seed_matters @needs_seed @needs_sampling
  Scenario: at temperature 1, different seeds do not all give the same completion
    When I stream a completion of 24 tokens at temperature 1 with seeds 1, 2 and 3
    Then the completions are not all the same
