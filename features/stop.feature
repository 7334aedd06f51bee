Feature: stop
  A stop string ends the generation before it: the output is the text the same
  request gives without it, cut before the stop string, and none of the stop
  string is sent, also when it starts inside one token and ends in the next.

  Background:
    Given the engine under test

  @check:stop.sequence @needs_stop
  Scenario: a stop string taken from the engine's own greedy output ends the generation before it
    When I stream a greedy completion of 32 tokens, then the same request with a stop string that is one of its tokens
    Then the output is the greedy text cut before the stop string, without it, and the end says stop

  @check:stop.across_tokens @needs_stop
  Scenario: a stop string that spans two tokens ends the generation before it
    When I stream a greedy completion of 32 tokens, then the same request with a stop string that spans two of its tokens
    Then the output is the greedy text cut before the stop string, without it, and the end says stop
