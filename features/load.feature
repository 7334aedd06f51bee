Feature: load
  An engine under load stays honest: while every slot is generating, health
  still answers at once, and says ready; more requests than slots are queued
  or refused as retriable, never failed or left hanging.

  Background:
    Given the engine under test

  @check:health.under_load @needs_health
  Scenario: health answers within a second while every slot is generating
    When I ask for health three times while every slot is generating
    Then health answers ready within 1 second each time

  @check:admission.overload
  Scenario: four times as many requests as slots are each served or refused as retriable
    When I send 4 times as many requests as the engine has slots, all at once
    Then each completes or is refused as retriable, none hangs, and the engine is idle and healthy afterwards
