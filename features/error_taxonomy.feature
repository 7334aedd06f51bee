Feature: error_taxonomy
  Every failure becomes one classified error with the right kind and the right
  retriable flag, whether the engine answers with a status or fails mid-stream.

  Background:
    Given the engine under test

  @check:errors.context_exceeded @needs_props
  Scenario: a prompt longer than the context window is an invalid request
    When I stream a completion whose prompt exceeds the context window
    Then the request fails as invalid_request, not retriable

  @check:errors.unknown_endpoint
  Scenario: an unknown endpoint is not found
    When I call an endpoint the engine does not have
    Then the call fails as not_found, not retriable

  @check:errors.status @stub_only @extended
  Scenario Outline: an HTTP error status is classified
    Given the stub answers every generation with HTTP <status> "<message>"
    When I stream a completion of 8 tokens
    Then the request fails as <kind>, <retriability>

    Examples:
      | status | message                        | kind                 | retriability  |
      | 400    | invalid n_predict              | invalid_request      | not retriable |
      | 401    | Invalid API Key                | auth                 | not retriable |
      | 403    | forbidden                      | auth                 | not retriable |
      | 404    | model not found                | not_found            | not retriable |
      | 429    | too many requests              | rate_limited         | retriable     |
      | 500    | internal failure               | engine_error         | retriable     |
      | 502    | bad gateway                    | upstream_unavailable | retriable     |
      | 503    | Loading model                  | upstream_unavailable | retriable     |
      | 503    | server busy, try again         | overloaded           | retriable     |

  @check:errors.in_stream @stub_only @extended
  Scenario Outline: a broken stream is classified
    Given the stub plays the "<script>" script
    And the client gives up after 0.5 seconds without data
    When I stream a completion of 8 tokens
    Then the request fails as <kind>, not retriable

    Examples:
      | script            | kind               |
      | error_in_stream   | engine_error       |
      | malformed_json    | protocol_violation |
      | content_type      | protocol_violation |
      | close_early       | worker_reset       |
      | reset             | worker_reset       |
      | stall_mid_stream  | decode_timeout     |
      | non_utf8          | protocol_violation |
      | oversized_frame   | protocol_violation |
      | endless           | protocol_violation |

    # Only an engine whose last frame says it is the last can have it missing.
    @needs_end_marker
    Examples:
      | script            | kind               |
      | missing_final     | protocol_violation |
      | legacy_error_line | protocol_violation |
