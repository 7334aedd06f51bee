Feature: admission_stream
  A request the engine admits streams Started, then tokens, then End; the end
  says why generation stopped and how many tokens it produced.

  Background:
    Given the engine under test

  @check:admission.stream
  Scenario: an admitted request streams started, tokens, then end
    When I stream a completion of 16 tokens
    Then the stream is started, yields tokens and ends
    And the end names a finish reason

  @check:admission.usage @needs_usage
  Scenario: the end reports usage that matches the tokens streamed
    When I stream a completion of 16 tokens
    Then the usage counts the tokens streamed

  @check:admission.token_ids @needs_token_ids @extended
  Scenario: every streamed token carries its vocabulary id
    When I stream a completion of 16 tokens
    Then every token carries its id
