Feature: responses
  OpenAI's Responses API (/v1/responses) streams named events, each with a
  sequence_number that counts from 0, and ends a response cut at its
  max_output_tokens with response.incomplete (incomplete_details.reason
  max_output_tokens), not response.completed. A client that trusts the status
  takes a cut answer for a whole one.

  Background:
    Given the engine under test

  @check:responses.sequence_numbers @needs_responses_api @extended
  Scenario: every event of a response stream carries its sequence number
    When I stream a response of 4 tokens
    Then every event carries its sequence number

  @check:responses.incomplete_at_budget @needs_responses_api @extended
  Scenario: a response cut at its budget says it is incomplete
    When I stream a response of 4 tokens
    Then a response cut at its budget ends incomplete for max_output_tokens
