Feature: responses
  OpenAI's Responses API (/v1/responses) streams named events, each with a
  sequence_number that counts from 0; each event of an output item says where
  it belongs (output_index, content_index, item_id), by which clients build the
  response; and a response cut at its max_output_tokens ends with
  response.incomplete (incomplete_details.reason max_output_tokens), not
  response.completed. A client that trusts the status takes a cut answer for a
  whole one.

  Background:
    Given the engine under test

  @check:responses.sequence_numbers @needs_responses_api @extended
  Scenario: every event of a response stream carries its sequence number
    When I stream a response of 4 tokens
    Then every event carries its sequence number

  @check:responses.event_indices @needs_responses_api @extended
  Scenario: every event of an output item says where it belongs
    When I stream a response of 4 tokens
    Then every item, part and delta event carries its indices

  @check:responses.incomplete_at_budget @needs_responses_api @extended
  Scenario: a response cut at its budget says it is incomplete
    When I stream a response of 4 tokens
    Then a response cut at its budget ends incomplete for max_output_tokens
