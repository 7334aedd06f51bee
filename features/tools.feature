Feature: tools
  Tool calls are well-formed: a required call names a declared tool, with
  arguments that parse and validate against that tool's parameters, and says so
  in its finish reason; tool choice none gives no call; the streamed call is the
  whole one; a tool's result sent back is answered; parallel calls have distinct
  ids. Each holds whole and streamed.

  Background:
    Given the engine under test

  @check:tools.call @needs_tools @needs_tool_choice
  Scenario Outline: a required tool call names a declared tool with valid arguments
    When I declare two tools and require a call, answered <mode>
    Then the answer calls a declared tool with arguments valid against its parameters, and its finish reason says tool call

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |

  @check:tools.choice_none @needs_tools @needs_tool_choice
  Scenario Outline: tool choice none gives no tool call
    When I declare two tools and forbid calling them, answered <mode>
    Then the answer calls no tool

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |

  @check:tools.stream_equivalence @needs_tools @needs_tool_choice @needs_non_streaming
  Scenario: the streamed tool call equals the whole one
    When I declare two tools and require a call, answered whole and streamed
    Then the streamed calls, their argument deltas joined, are the whole answer's calls

  @check:tools.result_roundtrip @needs_tools
  Scenario Outline: a tool's result sent back is answered with content or a well-formed call
    When I send back the result of a weather call, answered <mode>
    Then the answer is content, or a call of a declared tool with valid arguments

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |

  @check:tools.parallel @needs_tools @needs_tool_choice @needs_parallel_tools @extended
  Scenario Outline: parallel tool calls are each well-formed, with distinct ids
    When I declare two tools, allow parallel calls and ask for both, answered <mode>
    Then the answer makes two or more well-formed calls with distinct ids

    Examples:
      | mode   |
      | stream |

    @needs_non_streaming
    Examples:
      | mode     |
      | blocking |
