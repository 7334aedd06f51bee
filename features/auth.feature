Feature: auth
  An engine started with an API key serves only requests that carry it: no
  key is 401, a wrong key 401 or 403, never a 5xx and never served; health
  stays public where the engine documents it so.

  Background:
    Given the engine under test

  @check:auth.required @needs_auth @extended
  Scenario: only the right API key is served
    When I stream a completion without the API key, with a wrong one, and with the right one
    Then only the right key is served, the others are refused with 401 or 403, and public health stays public
