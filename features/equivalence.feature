Feature: equivalence
  One server, many wires: the same greedy request through the engine's own API
  and through the other APIs it serves (OpenAI's, Anthropic's) gives the same
  text, prompt against prompt and chat against chat.

  Background:
    Given the engine under test

  @check:equivalence.wires @needs_other_wires
  Scenario: the same greedy request gives the same text through every wire
    When I send the same greedy request of 24 tokens through each wire the server speaks
    Then every wire gives the same text
