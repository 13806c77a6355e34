#!/usr/bin/python3
"""Unplugs and replugs a fake USB device under a running program (run inside umockdev-wrapper).

usb-hotplug.py DEVICE_FILE SYSPATH PROGRAM [ARGS...]
Adds every device of DEVICE_FILE (umockdev format) to a new testbed, starts PROGRAM, and on
each line PROGRAM prints that starts with "hotplug " or "arrived " / "departed " acts:
after the first "arrived", removes SYSPATH (uevent remove); after "departed", adds it back
(uevent add). PROGRAM's lines are copied to standard output; the exit status is PROGRAM's.
"""
import os
import subprocess
import sys

import gi

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402


def main():
    device_file, syspath, program = sys.argv[1], sys.argv[2], sys.argv[3:]
    testbed = UMockdev.Testbed.new()
    with open(device_file) as f:
        text = f.read()
    # The removed device and its children (interfaces, ttys): everything under SYSPATH.
    blocks = [b for b in text.split("\n\n") if b.strip()]
    mine_blocks = [b for b in blocks if b.split("\n", 1)[0][3:].startswith(syspath)]
    # umockdev cannot create a tty node twice in one testbed: the replugged device comes back
    # without its tty (enough for hotplug; the tty lookup has its own tests).
    mine = "\n\n".join(b for b in mine_blocks if "\nN: tty" not in b) + "\n"
    # Children first, so no link of an interface or tty is left behind to block the re-add.
    nodes = [line[3:] for b in mine_blocks for line in b.split("\n") if line.startswith("N: tty")]
    removal = sorted((b.split("\n", 1)[0][3:] for b in mine_blocks), key=len, reverse=True)
    testbed.add_from_string(text)
    child = subprocess.Popen(program, stdout=subprocess.PIPE, text=True)
    arrivals = 0
    for line in child.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.startswith("arrived "):
            arrivals += 1
            if arrivals == 1:
                testbed.uevent("/sys" + syspath, "remove")
                for path in removal:
                    testbed.remove_device("/sys" + path)
                # remove_device leaves a tty's /dev node (a link to a pty) behind; the kernel would not.
                for node in nodes:
                    try:
                        os.unlink(os.path.join(testbed.get_root_dir(), "dev", node))
                    except FileNotFoundError:
                        pass
        elif line.startswith("departed "):
            testbed.add_from_string(mine)
            testbed.uevent("/sys" + syspath, "add")
    sys.exit(child.wait())


main()
