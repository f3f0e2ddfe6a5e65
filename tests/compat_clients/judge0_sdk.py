"""Drives sandcell's Judge0 API with the official Judge0 Python SDK (PyPI `judge0`),
unmodified. Usage: judge0_sdk.py ENDPOINT [KEY]. Prints one JSON object: case name ->
the fields the SDK's Submission exposes. tests/compat_clients.rs checks them."""

import json
import sys

import judge0
from judge0 import LanguageAlias, Status, Submission

endpoint = sys.argv[1]
headers = {"X-Auth-Token": sys.argv[2]} if len(sys.argv) > 2 else {}
client = judge0.Client(endpoint, headers)

C_HELLO = '#include <stdio.h>\nint main(void) { puts("hello from c"); return 0; }\n'
CPP_HELLO = '#include <iostream>\nint main() { std::cout << "hello from c++" << std::endl; }\n'
CPP_BROKEN = "int main() { return undefined_name; }\n"
PY_ECHO = "name = input()\nprint(f'hello, {name}')\n"
PY_SPIN = "while True:\n    pass\n"
PY_CRASH = "raise ValueError('boom')\n"


def fields(s):
    return {
        "status": int(s.status) if s.status is not None else None,
        "status_name": str(s.status) if s.status is not None else None,
        "stdout": s.stdout,
        "stderr": s.stderr,
        "compile_output": s.compile_output,
        "message": s.message,
        "exit_code": s.exit_code,
        "time": s.time,
        "memory": s.memory,
        "token": str(s.token) if s.token else None,
    }


out = {
    "about_version": client.version,
    "languages": sorted(lang.id for lang in client.languages),
    "c": fields(judge0.run(client=client, source_code=C_HELLO, language=LanguageAlias.C)),
    "cpp": fields(judge0.run(client=client, source_code=CPP_HELLO, language=LanguageAlias.CPP)),
    "python": fields(judge0.run(client=client, source_code="print('hello from python')\n",
                                language=LanguageAlias.PYTHON)),
    "stdin": fields(judge0.run(client=client, source_code=PY_ECHO, language=LanguageAlias.PYTHON,
                               stdin="world\n")),
    "compile_error": fields(judge0.run(client=client, source_code=CPP_BROKEN, language=54)),
    "timeout": fields(judge0.run(client=client, source_code=PY_SPIN, language=71,
                                 cpu_time_limit=1, cpu_extra_time=0.5, wall_time_limit=3)),
    "runtime_error": fields(judge0.run(client=client, source_code=PY_CRASH, language=71)),
    "wrong_answer": fields(judge0.run(client=client, source_code="print(41)\n", language=71,
                                      expected_output="42\n")),
    "accepted": fields(judge0.run(client=client, source_code="print(42)  \n", language=71,
                                  expected_output="42")),
}
batch = judge0.run(client=client, submissions=[
    Submission(source_code="print(input())\n", language=71, stdin="one"),
    Submission(source_code=C_HELLO, language=50),
    Submission(source_code="print(2)\n", language=71, expected_output="3"),
])
out["batch"] = [fields(s) for s in batch]
out["statuses"] = [s["id"] for s in client.get_statuses()]
assert Status.ACCEPTED == 3
print(json.dumps(out))
