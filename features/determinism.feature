Feature: determinism
  The same seeded request gives the same tokens: repeated on one replica, on
  every replica, and, where the engine promises batch invariance, whatever
  else shares the batch. The suite must also catch an engine that does not:
  the stub-only scenarios are its negative controls.

  Background:
    Given the engine under test

  @check:determinism.repeat @needs_seed
  Scenario: a seeded request repeated alone gives identical tokens
    When I send 3 seeded requests alone, 2 times each
    Then every request gives identical tokens

  @check:determinism.batch_invariance @needs_batch_invariance @extended
  Scenario: a seeded request gives identical tokens under concurrent load
    When I send 3 seeded requests alone and under a load of 3 others
    Then the load really overlapped
    And every request gives identical tokens

  @check:determinism.catches_replica_divergence @stub_only @extended
  Scenario: a replica diverging at token 5 is named at token 5
    Given a second replica that plays the "diverge_at_5" script
    When I send 2 seeded requests to both replicas alone
    Then the suite reports a replica divergence at token 5

  @check:determinism.catches_batch_variance @stub_only @extended
  Scenario: negative control: a batch-variant engine is caught under load
    Given the stub plays the "batch_variant" script
    When I send 3 seeded requests alone and under a load of 3 others
    Then the load really overlapped
    And the suite reports a load divergence at token 3

  @check:determinism.catches_ignored_seed @stub_only @extended
  Scenario: an engine that ignores the seed is caught on repeat
    Given the stub plays the "ignore_seed" script
    When I send 2 seeded requests alone, 2 times each
    Then the suite reports a repeat divergence
