Feature: metrics
  An engine's Prometheus counters count what it served: requests, prompt
  tokens and generated tokens rise by exactly what a client had it do.

  Background:
    Given the engine under test

  @check:metrics.consistent @needs_metrics @needs_usage
  Scenario: the counters of prompt and generated tokens rise by what was served
    When I read the metrics, stream 3 completions, and read them again
    Then each counter of what was served rose by exactly that
