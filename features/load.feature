Feature: load
  An engine under load stays honest: while every slot is generating, health
  still answers at once, and says ready.

  Background:
    Given the engine under test

  @check:health.under_load @needs_health
  Scenario: health answers within a second while every slot is generating
    When I ask for health three times while every slot is generating
    Then health answers ready within 1 second each time
