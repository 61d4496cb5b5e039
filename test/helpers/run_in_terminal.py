"""Run a command in a pseudo-terminal and answer its yes/no questions in order.

Usage: python3 run_in_terminal.py ANSWERS COMMAND [ARGS...]
ANSWERS is a comma-separated list ("y", "n,y"); each "[y/N]" prompt gets the next one.
Prints everything the command wrote and exits with its exit code. For tests of the CLI's
interactive questions, which are only asked on a terminal.
"""

import os
import pty
import select
import sys


def main() -> int:
    answers = [answer for answer in sys.argv[1].split(",") if answer]
    command = sys.argv[2:]
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    output = b""
    asked = 0
    while True:
        ready, _, _ = select.select([terminal], [], [], 120)
        if not ready:
            os.kill(pid, 9)
            break
        try:
            chunk = os.read(terminal, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        while output.count(b"[y/N]") > asked:
            answer = answers[asked] if asked < len(answers) else "n"
            os.write(terminal, (answer + "\n").encode())
            asked += 1
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(output.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
