Feature: request_errors
  A request that is the client's mistake is refused as one: a 4xx that says
  what is wrong, never a 5xx, never served as if it were fine.

  Background:
    Given the engine under test

  @check:errors.malformed_body @needs_non_streaming
  Scenario: a body that is not JSON is refused as an invalid request
    When I send a generation request whose body is not JSON
    Then it is refused as an invalid request, not a server error

  @check:errors.invalid_param @needs_non_streaming
  Scenario: a token budget of the wrong type is refused, naming the parameter
    When I send a generation request whose token budget is a string
    Then it is refused as an invalid request whose message names the parameter

  @check:errors.unknown_model @needs_non_streaming @needs_named_models
  Scenario: a model the engine does not serve is refused, or served by a model that says so
    When I send a generation request for a model the engine does not serve
    Then it is refused, or served by a model that says which it is
