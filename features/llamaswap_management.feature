Feature: llamaswap_management
  llama-swap starts models on demand and unloads them on request. Its
  management API lists the models and their state, names what is running,
  unloads one or all, and generates images; a request for a model that is not
  loaded waits for the swap, which can outlast a naive client's read timeout.

  Background:
    Given the engine under test

  @check:llamaswap.models_listed @needs_model_management @extended
  Scenario: the proxy lists its models with their load state
    Then every listed model has a load state

  @check:llamaswap.running @needs_model_management @extended
  Scenario: a model that served a request is running
    When I stream a chat completion of 4 tokens
    Then the running list names the model that served it

  @check:llamaswap.unload_one @needs_model_management @extended
  Scenario: unloading the model that runs stops it
    When I stream a chat completion of 4 tokens
    And I unload the model that served it
    Then the running list does not name it

  @check:llamaswap.unload_all @needs_model_management @extended
  Scenario: unloading every model empties the running list
    When I stream a chat completion of 4 tokens
    And I unload every model
    Then the running list is empty

  @check:llamaswap.cold_swap @needs_model_management @stub_only @extended
  Scenario: a cold swap longer than a naive client's read timeout still streams
    Given the stub takes 1.2 seconds to swap a model in
    Then a client with a 0.4 second read timeout gives up during the swap
    When I stream a chat completion of 4 tokens
    Then the stream completes after waiting at least 1.2 seconds for its first token

  @check:llamaswap.image_generation @needs_image_generation @extended
  Scenario: image generation returns a real PNG
    When I ask for a 32x32 image
    Then the image is a PNG of 32x32 pixels
