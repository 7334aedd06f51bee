Feature: text
  Text in any script streams whole: a character of several UTF-8 bytes split
  across two tokens must not reach the client as U+FFFD, and the streamed
  pieces are the text the engine gives whole.

  Background:
    Given the engine under test

  @check:text.utf8_integrity @needs_non_streaming
  Scenario: Japanese, Chinese, accented and emoji text streams without U+FFFD
    When I stream completions of prompts in Japanese, Chinese, accented French and emoji
    Then no piece holds U+FFFD, and the pieces join to the text the engine gives whole and reads back from the ids
