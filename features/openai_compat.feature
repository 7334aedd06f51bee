Feature: openai_compat
  The rows that community compatibility matrices track for OpenAI-compatible
  servers, each a named check: the seed is honoured, 4xx errors carry the
  OpenAI error envelope, stream_options.include_usage gives a final usage
  chunk, the stream ends with [DONE], the last choice names its finish reason,
  and the usage agrees with the tokens streamed.

  Background:
    Given the engine under test

  @check:openai.done_terminator @needs_openai_compat @extended
  Scenario: a chat stream ends with the [DONE] terminator
    When I stream a chat completion of 8 tokens
    Then the stream ends with data: [DONE]

  @check:openai.finish_reason @needs_openai_compat @extended
  Scenario: the last choice of a chat stream names its finish reason
    When I stream a chat completion of 8 tokens
    Then the last chunk with choices names the finish reason

  @check:openai.include_usage @needs_openai_compat @extended
  Scenario: include_usage gives a final usage chunk with empty choices
    When I stream a chat completion of 8 tokens
    Then a last chunk with empty choices carries the usage

  @check:openai.usage_consistent @needs_openai_compat @extended
  Scenario: the usage agrees with the tokens streamed
    When I stream a chat completion of 8 tokens
    Then the usage counts agree with the tokens streamed

  @check:openai.seed_honoured @needs_openai_compat @needs_seed @extended
  Scenario: the same seeded request twice gives the same text
    When I stream the same seeded chat completion twice
    Then both completions have the same text

  @check:openai.error_envelope @needs_openai_compat @extended
  Scenario: an invalid request is refused with the OpenAI error envelope
    Then an invalid chat request is refused with the OpenAI error envelope
