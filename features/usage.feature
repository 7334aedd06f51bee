Feature: usage
  The usage an engine reports is what its own tokenizer counts: a usage that
  disagrees with the tokenizer bills, truncates or budgets on a wrong number.

  Background:
    Given the engine under test

  @check:usage.prompt_tokens @needs_usage @needs_tokenize
  Scenario: the reported prompt token count is the engine's own tokenizer count
    When I stream a completion of 8 tokens
    Then the usage's prompt token count is what the engine's tokenizer counts for that prompt
