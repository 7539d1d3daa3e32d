"""Every `modelcycle VERB --option` that a message or hint tells the user to run exists."""

import re
from pathlib import Path

import typer.main

import modelcycle
from modelcycle.cli import main

SOURCE = Path(modelcycle.__file__).parent
QUOTED = re.compile(r"`modelcycle ([a-z][a-z-]*)([^`]*)`")


def commands() -> dict[str, set[str]]:
    main._register()  # the verbs are added on first use
    group = typer.main.get_command(main.app)
    out = {}
    for name, command in group.commands.items():
        # a group of verbs (`modelcycle backends migrate --to`): the options of its verbs
        verbs = [command, *getattr(command, "commands", {}).values()]
        out[name] = {opt for verb in verbs for param in verb.params for opt in (*param.opts, *param.secondary_opts)}
    return out


def test_hints_name_only_commands_and_options_that_exist():
    known = commands()
    assert {"run", "status", "promote", "predict", "doctor"} <= set(known)
    found, wrong = 0, []
    for path in SOURCE.rglob("*"):
        if path.suffix not in (".py", ".yaml") or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for verb, rest in QUOTED.findall(line):
                found += 1
                where = f"{path.relative_to(SOURCE)}:{number}"
                if verb not in known:
                    wrong.append(f"{where}: no command `modelcycle {verb}`")
                    continue
                for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest):
                    if option not in known[verb]:
                        wrong.append(f"{where}: `modelcycle {verb}` has no option {option}")
    assert found > 10  # the scan sees the hints
    assert not wrong, "\n".join(wrong)
