Feature: logprobs
  Log-probabilities are what they say: never above 0, the list of most likely
  tokens as long as asked and in descending order, the chosen token first under
  greedy decoding, and the same numbers whether the answer is streamed or whole.

  Background:
    Given the engine under test

  @check:logprobs.consistent @needs_top_logprobs
  Scenario: log-probabilities are consistent, streamed and whole
    When I stream a greedy completion of 16 tokens listing the 3 most likely tokens at each position, and ask for it whole
    Then the log-probabilities are at most 0, listed in descending order led by the chosen token, and the same whole
