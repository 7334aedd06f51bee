Feature: cancel
  When the client goes away, the stream stops at once and the engine stops
  generating: a disconnected request must not keep a slot busy.

  Background:
    Given the engine under test

  @check:cancel.stream_stops
  Scenario: a cancelled stream ends at once
    When I stream a completion of 400 tokens and disconnect after 3 tokens
    Then the stream ends as cancelled
    And no token arrives after the cancel

  @check:cancel.engine_side @needs_engine_side_cancel
  Scenario: a client disconnect stops generation on the engine
    When I stream a completion of 400 tokens and disconnect after 3 tokens
    Then the stream ends as cancelled
    And the engine stops generating within 2 seconds

  @check:cancel.queued @needs_engine_side_cancel @needs_props
  Scenario: a request cancelled while it waits for a slot never starts generating
    When I fill every slot, then give up on one more request while it waits for a slot
    Then no slot starts generating for it once the slots are free
