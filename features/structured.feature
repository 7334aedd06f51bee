Feature: structured
  Structured output is what was asked for: with a JSON schema, the output parses
  and validates against it exactly (Draft 2020-12); in JSON mode, it is one JSON
  object. Both hold whether the answer comes whole or streamed.

  Background:
    Given the engine under test

  @check:structured.json_schema @needs_json_schema
  Scenario Outline: the output validates against the JSON schema of the request
    When I ask for a forecast constrained to a JSON schema with nested objects, arrays, enums and required fields, answered <mode>
    Then the output parses as JSON and validates against that schema

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |

  @check:structured.json_object @needs_json_object
  Scenario Outline: JSON mode gives one JSON object
    When I ask for a JSON object in JSON mode, answered <mode>
    Then the output is one JSON object

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |
