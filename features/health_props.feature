Feature: health_props
  What an engine says about itself is true: ready means it admits requests,
  and it reports its context size, slots, version and model.

  Background:
    Given the engine under test

  @check:health.ready_admits @needs_health
  Scenario: an engine that reports ready admits a request
    When I ask the engine for its health
    Then a completion request is admitted

  @check:props.reported @needs_props @extended
  Scenario: props report the context size and the slot count
    Then props report the context size and the slot count

  @check:version.reported @needs_engine_version @extended
  Scenario: the engine reports its version and model
    Then the engine reports its version and model
