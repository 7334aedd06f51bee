Feature: ordering
  Tokens arrive in order: indices start at 0 and increase by one, with no
  duplicate, reordering or gap, and the pieces reassemble the whole text.

  Background:
    Given the engine under test

  @check:ordering.indices
  Scenario: token indices start at 0 and increase by one
    When I stream a completion of 32 tokens
    Then token indices start at 0 and increase by one

  @check:ordering.reassembly @needs_non_streaming
  Scenario: the streamed pieces reassemble the complete text
    When I stream a completion of 32 tokens
    Then the pieces concatenate to the complete text of the same request
