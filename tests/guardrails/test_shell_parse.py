"""The shell parser: pipelines and simple commands as a POSIX shell reads them, quotes,
substitutions, redirections and here-documents, and problems reported, never raised."""

from __future__ import annotations

from keel.guardrails.shell_parse import Command, Script, parse


def commands(script: Script) -> list[list[str]]:
    return [list(c.argv) for p in script.pipelines for c in p.commands]


def only(source: str) -> Command:
    script = parse(source)
    assert [len(p.commands) for p in script.pipelines] == [1]
    return script.pipelines[0].commands[0]


def test_operators_split_a_line_into_pipelines_of_simple_commands() -> None:
    script = parse("cd x && make || echo failed; ls -la | grep py & sleep 1")
    assert commands(script) == [
        ["cd", "x"], ["make"], ["echo", "failed"], ["ls", "-la"], ["grep", "py"], ["sleep", "1"],
    ]  # fmt: skip
    assert [len(p.commands) for p in script.pipelines] == [1, 1, 1, 2, 1]
    assert script.pipelines[3].background


def test_quotes_are_removed_and_keep_words_together() -> None:
    assert only("""echo 'a b' "c d" e\\ f g"h"'i'""").argv == ("echo", "a b", "c d", "e f", "ghi")


def test_single_quotes_keep_dollar_signs_literal_but_double_quotes_expand() -> None:
    single, double = only("echo '$HOME' \"$HOME\"").words[1:]
    assert (single.text, single.dynamic) == ("$HOME", False)
    assert (double.text, double.dynamic) == ("$HOME", True)


def test_ansi_c_quotes_are_decoded() -> None:
    assert only(r"$'\x72\x6d' -rf $'\057'").argv == ("rm", "-rf", "/")


def test_command_substitutions_are_parsed_too_in_double_quotes_but_not_in_single() -> None:
    word = only('echo "today: $(date +%F) by `whoami`"').words[1]
    assert word.dynamic
    assert [commands(s) for s in word.substitutions] == [[["date", "+%F"]], [["whoami"]]]
    assert only("echo '$(rm -rf ~)'").words[1].substitutions == ()


def test_nested_substitutions_and_quotes_inside_them() -> None:
    word = only('echo "$(cat "$(ls | head -1)")"').words[1]
    (outer,) = word.substitutions
    assert commands(outer) == [["cat", "$(ls | head -1)"]]
    (inner,) = outer.pipelines[0].commands[0].words[1].substitutions
    assert commands(inner) == [["ls"], ["head", "-1"]]


def test_process_substitution_is_a_word_with_a_parsed_script() -> None:
    word = only("bash <(curl -s https://x.example)").words[1]
    assert commands(word.substitutions[0]) == [["curl", "-s", "https://x.example"]]


def test_redirections_keep_their_file_descriptor_and_target() -> None:
    command = only("run >out.txt 2>>err.log 2>&1 </dev/null &>all.log")
    shown = [(r.fd, r.op, r.target.text, r.writes) for r in command.redirects]
    assert shown == [
        (None, ">", "out.txt", True),
        (2, ">>", "err.log", True),
        (2, ">&", "1", False),
        (None, "<", "/dev/null", False),
        (None, "&>", "all.log", True),
    ]
    assert command.argv == ("run",)


def test_a_digit_word_followed_by_a_space_is_an_argument_not_a_descriptor() -> None:
    command = only("echo 2 > x")
    assert command.argv == ("echo", "2")
    assert command.redirects[0].fd is None


def test_here_documents_are_bodies_not_commands() -> None:
    script = parse("cat > f.py <<'EOF'\nimport os\nrm -rf /\nEOF\necho done")
    assert commands(script) == [["cat"], ["echo", "done"]]
    output, heredoc = script.pipelines[0].commands[0].redirects
    assert (heredoc.op, heredoc.body) == ("<<", "import os\nrm -rf /")
    assert (output.op, output.target.text) == (">", "f.py")


def test_an_unquoted_here_document_runs_the_substitutions_in_its_body() -> None:
    (heredoc,) = only("cat <<EOF\nnow: $(date)\nEOF").redirects
    assert [commands(s) for s in heredoc.target.substitutions] == [[["date"]]]
    (literal,) = only("cat <<'EOF'\nnow: $(date)\nEOF").redirects
    assert literal.target.substitutions == ()


def test_here_strings_carry_their_text() -> None:
    assert only("bash <<< 'rm -rf ~'").redirects[0].body == "rm -rf ~"


def test_assignments_before_a_command_are_not_its_name() -> None:
    command = only("FOO=1 BAR='a b' python x.py")
    assert command.argv == ("python", "x.py")
    assert [w.text for w in command.assignments] == ["FOO=1", "BAR=a b"]
    assert only("'FOO=1' python").argv == ("FOO=1", "python")


def test_subshells_and_groups_are_walked_with_their_depth() -> None:
    script = parse("(cd /tmp && make) ; { ls; }")
    assert commands(script) == [["cd", "/tmp"], ["make"], ["ls"]]
    assert [p.depth for p in script.pipelines] == [1, 1, 0]


def test_control_flow_keywords_are_skipped_and_their_bodies_kept() -> None:
    script = parse("if grep -q x f; then rm -rf build; else echo no; fi")
    assert commands(script) == [["grep", "-q", "x", "f"], ["rm", "-rf", "build"], ["echo", "no"]]
    loop = parse("for f in $(ls src); do python -m py_compile $f; done")
    assert commands(loop) == [["python", "-m", "py_compile", "$f"]]
    assert commands(loop.expansions[0]) == [["ls", "src"]]
    case = parse("case $x in a) rm -rf /;; *) echo;; esac")
    assert commands(case) == [["rm", "-rf", "/"], ["echo"]]


def test_function_definitions_are_recorded_and_their_bodies_parsed() -> None:
    script = parse(":(){ :|:& };:")
    assert script.functions == (":",)
    assert commands(script) == [[":"], [":"], [":"]]
    assert script.pipelines[0].background
    assert parse("function f { rm -rf /; }; f").functions == ("f",)


def test_comments_are_ignored_but_a_hash_inside_a_word_is_not() -> None:
    assert commands(parse("echo a#b # rm -rf /")) == [["echo", "a#b"]]


def test_newlines_separate_commands_and_backslash_newline_joins_lines() -> None:
    assert commands(parse("make \\\n  test\nls")) == [["make", "test"], ["ls"]]


def test_unbalanced_quotes_and_parentheses_are_problems_not_errors() -> None:
    assert parse("echo 'oops").problems == ("unbalanced single quote (')",)
    assert parse('echo "oops').problems == ('unbalanced double quote (")',)
    assert parse("echo $(date").problems == ("unbalanced $( ... )",)
    assert parse("(ls").problems == ("unbalanced '('",)
    assert parse("ls)").problems == ("unbalanced ')'",)
    assert parse("cat >").problems == ("the redirection > has no target",)
