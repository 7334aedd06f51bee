Feature: limits
  A request for N tokens streams exactly N, unless the engine says it stopped
  earlier (an end-of-sequence token or a stop string); the finish reason is
  length exactly when N was reached. Off-by-one budgets are a common bug.

  Background:
    Given the engine under test

  @check:limits.max_tokens @needs_end_marker
  Scenario: a request for N tokens streams exactly N unless the end names an earlier stop
    When I stream completions of 1, 7 and 32 tokens
    Then each streams exactly its budget unless the end names an earlier stop
