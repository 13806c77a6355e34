#!/usr/bin/env python3
"""paybridge in a real Debian guest under QEMU (issue 14): the package installed under a real
systemd and udev, an emulated FTDI terminal cable, and the scenarios of HardwareSim/qemu/README.md.

Standard library only. Run through HardwareSim/qemu/run, which checks the prerequisites.
"""
import argparse
import base64
import hashlib
import json
import shlex
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(REPO, ".build", "qemu")

SUITE = "bookworm"
MIRROR = os.environ.get("PAYBRIDGE_QEMU_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["systemd", "systemd-sysv", "udev", "kmod", "linux-image-amd64", "initramfs-tools",
            "libcurl4", "procps",
            # systemd-analyze verify runs man(1) for each Documentation=man: page: without man-db
            # every such page "fails", whether the package ships it or not.
            "man-db"]
# The initrd only has to find an ext4 root on virtio; everything else udev loads from the root.
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"]
# Kernel modules nothing in this guest uses (sound, graphics, radios, ...): fewer bytes to pack
# into the image on every build. USB serial, virtio and filesystems stay.
PRUNE_MODULES = ["sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/net/ethernet",
                 "drivers/infiniband", "drivers/staging", "drivers/scsi", "drivers/isdn", "drivers/iio",
                 "drivers/bluetooth", "net/bluetooth", "net/wireless", "net/mac80211", "drivers/input/touchscreen",
                 "drivers/hwmon", "drivers/mtd", "drivers/video", "drivers/md", "drivers/nvme", "fs/btrfs",
                 "fs/xfs", "fs/ocfs2", "fs/nfs", "fs/nfsd", "fs/cifs", "fs/smb", "fs/ceph", "fs/gfs2", "fs/f2fs"]
PRUNE_PATHS = ["var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info",
               "lib/firmware", "var/lib/apt/lists"]

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------------------- the image

def image_key():
    """What the cached root image depends on: the package list, mirror suite, this file's image
    code and the guest overlay. The .deb and charger-sim are not in it (they ride on a second disk)."""
    h = hashlib.sha256()
    h.update(json.dumps([SUITE, PACKAGES, INITRD_MODULES, PRUNE_MODULES, PRUNE_PATHS]).encode())
    with open(__file__, "rb") as f:
        src = f.read()
    # The markers at the start of a line: the first mention of them is this very line.
    h.update(src[src.index(b"\n# -- image start\n"):src.index(b"\n# -- image end\n")])
    for root, dirs, files in sorted(os.walk(os.path.join(HERE, "guest"))):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            h.update(os.path.relpath(p, HERE).encode())
            h.update(os.readlink(p).encode() if os.path.islink(p) else open(p, "rb").read())
    return h.hexdigest()[:16]


# -- image start
# gpio-sim (simulated GPIO chips for issue 16's relay scenarios) is enabled in no Debian kernel:
# these GPL-2.0 sources are taken from Debian's linux-source package of the guest's very kernel
# at image-build time (never committed) and built out of tree against its headers.
GPIO_SIM_SOURCES = ["drivers/gpio/gpio-sim.c", "drivers/gpio/gpiolib.h", "kernel/irq/irq_sim.c"]


def build_gpio_sim(rootfs, kver):
    """gpio-sim.ko for the guest's kernel, installed under /lib/modules/KVER/updates/ (depmod
    follows in build_image). The one change: irq_to_desc is not exported to modules, so the
    simulated interrupt is raised with generic_handle_irq (edge events still work)."""
    t = time.monotonic()
    version = subprocess.run(["chroot", rootfs, "dpkg-query", "-W", "-f=${Version}", f"linux-image-{kver}"],
                             check=True, capture_output=True, text=True).stdout.strip()
    series = ".".join(version.split(".")[:2])  # 6.1.176-1 -> 6.1
    src = os.path.join(BUILD, f"gpio-sim-src-{version}")
    if not os.path.isdir(src):
        tmp = src + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        # apt's sandbox user cannot write here: download as root, quietly.
        sh(["apt-get", "download", "-q", f"linux-source-{series}={version}"], cwd=tmp, stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        deb = [f for f in os.listdir(tmp) if f.endswith(".deb")][0]
        members = " ".join(f"linux-source-{series}/{p}" for p in GPIO_SIM_SOURCES)
        sh(["bash", "-o", "pipefail", "-c", f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./usr/src/linux-source-{series}.tar.xz "
                                            f"| xz -dc | tar -x {members}"], cwd=tmp)
        os.unlink(os.path.join(tmp, deb))
        os.rename(tmp, src)
    headers = f"/lib/modules/{kver}/build"
    if not os.path.isdir(headers):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", f"linux-headers-{kver}"]
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sh(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
            sh(cmd, env=env, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="gpio-sim-", dir=BUILD)
    base = os.path.join(src, f"linux-source-{series}")
    shutil.copy(os.path.join(base, "drivers/gpio/gpio-sim.c"), os.path.join(work, "gpio-sim-core.c"))
    shutil.copy(os.path.join(base, "drivers/gpio/gpiolib.h"), work)
    irq = open(os.path.join(base, "kernel/irq/irq_sim.c")).read()
    patched = irq.replace("handle_simple_irq(irq_to_desc(irqnum));", "generic_handle_irq(irqnum);")
    if patched == irq:
        raise RuntimeError("gpio-sim: irq_sim.c no longer calls handle_simple_irq(irq_to_desc(irqnum)); revisit the patch")
    open(os.path.join(work, "irq_sim.c"), "w").write(patched)
    open(os.path.join(work, "Kbuild"), "w").write("obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-core.o irq_sim.o\n")
    sh(["make", "-s", "-C", headers, f"M={work}", "modules"], stdout=subprocess.DEVNULL)
    dest = os.path.join(rootfs, "lib/modules", kver, "updates")
    os.makedirs(dest, exist_ok=True)
    shutil.copy(os.path.join(work, "gpio-sim.ko"), dest)
    shutil.rmtree(work)
    log(f"image: gpio-sim.ko for {kver} ({version}) {time.monotonic() - t:.0f} s")


def build_image(out):
    """debootstrap, the test overlay, a small initrd, pruned, packed with mkfs.ext4 -d (no loop mount)."""
    rootfs = out + ".rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    # The debootstrap result is kept by its inputs alone, so that changing the test overlay does
    # not fetch the packages again (CI starts clean and always runs it).
    base = os.path.join(BUILD, "debootstrap-" + hashlib.sha256(json.dumps([SUITE, MIRROR, PACKAGES]).encode()).hexdigest()[:16])
    if not os.path.isdir(base):
        t = time.monotonic()
        for old in os.listdir(BUILD):
            if old.startswith("debootstrap-"):
                shutil.rmtree(os.path.join(BUILD, old), ignore_errors=True)
        # INITRD=No: the kernel's postinst skips the MODULES=most initrd (36 MB, slow); ours is made below.
        env = dict(os.environ, INITRD="No", DEBIAN_FRONTEND="noninteractive")
        for attempt in (1, 2):
            # One retry: a mirror hiccup on a clean CI machine should not fail the proof.
            shutil.rmtree(base + ".tmp", ignore_errors=True)
            r = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE,
                                base + ".tmp", MIRROR], env=env, stdout=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            log(f"image: debootstrap failed (exit {r.returncode}), attempt {attempt}")
        else:
            raise RuntimeError("debootstrap failed twice")
        os.rename(base + ".tmp", base)
        log(f"image: debootstrap {time.monotonic() - t:.0f} s")
    t = time.monotonic()
    sh(["cp", "-a", base, rootfs])
    kver = sorted(os.listdir(os.path.join(rootfs, "lib/modules")))[-1]
    for rel in PRUNE_MODULES:
        shutil.rmtree(os.path.join(rootfs, "lib/modules", kver, "kernel", rel), ignore_errors=True)
    for rel in PRUNE_PATHS:
        p = os.path.join(rootfs, rel)
        if os.path.isdir(p):
            shutil.rmtree(p)
            os.makedirs(p)
    os.makedirs(os.path.join(rootfs, "var/cache/apt/archives/partial"), exist_ok=True)
    build_gpio_sim(rootfs, kver)
    sh(["chroot", rootfs, "depmod", kver])
    ic = os.path.join(rootfs, "etc/initramfs-tools")
    conf = open(os.path.join(ic, "initramfs.conf")).read().splitlines()
    conf = ["MODULES=list" if l.startswith("MODULES=") else "COMPRESS=gzip" if l.startswith("COMPRESS=") else l
            for l in conf]
    open(os.path.join(ic, "initramfs.conf"), "w").write("\n".join(conf) + "\n")
    with open(os.path.join(ic, "modules"), "a") as f:
        f.write("\n".join(INITRD_MODULES) + "\n")
    sh(["chroot", rootfs, "update-initramfs", "-c", "-k", kver], stdout=subprocess.DEVNULL)
    # The test overlay: agent, payload mount, the paybridged drop-in (test-only, never packaged).
    sh(["cp", "-a", os.path.join(HERE, "guest") + "/.", rootfs + "/"])
    open(os.path.join(rootfs, "etc/hostname"), "w").write("paybridge-hil\n")
    open(os.path.join(rootfs, "etc/hosts"), "w").write("127.0.0.1 localhost\n127.0.1.1 paybridge-hil\n")
    open(os.path.join(rootfs, "etc/fstab"), "w").write("/dev/vda / ext4 rw 0 0\n")
    # Nothing periodic may wake up in the middle of a scenario.
    for unit in ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
                 "systemd-tmpfiles-clean.timer", "man-db.timer", "dpkg-db-backup.timer", "e2scrub_reap.service",
                 # No one logs in: the console is a file on the host, the agent is the way in.
                 "getty@tty1.service", "getty-static.service", "serial-getty@ttyS0.service"]:
        p = os.path.join(rootfs, "etc/systemd/system", unit)
        if not os.path.lexists(p):
            os.symlink("/dev/null", p)
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(rootfs, "boot", "vmlinuz-" + kver), os.path.join(out, "vmlinuz"))
    shutil.copy(os.path.join(rootfs, "boot", "initrd.img-" + kver), os.path.join(out, "initrd.img"))
    log(f"image: copy, prune, initrd, overlay {time.monotonic() - t:.0f} s")
    t = time.monotonic()
    sh(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootfs, os.path.join(out, "root.img"), "1500M"])
    log(f"image: mkfs.ext4 -d {time.monotonic() - t:.0f} s")
    t = time.monotonic()
    shutil.rmtree(rootfs)
    log(f"image: working tree removed {time.monotonic() - t:.0f} s")
# -- image end


def ensure_image(rebuild):
    os.makedirs(BUILD, exist_ok=True)
    key = image_key()
    out = os.path.join(BUILD, "image-" + key)
    if rebuild or not os.path.exists(os.path.join(out, "root.img")):
        for old in os.listdir(BUILD):
            if old.startswith("image-"):
                shutil.rmtree(os.path.join(BUILD, old), ignore_errors=True)
        t = time.monotonic()
        build_image(out + ".tmp")
        os.rename(out + ".tmp", out)
        log(f"image: built in {time.monotonic() - t:.0f} s ({out})")
    else:
        log(f"image: cached {out}")
    return out


def make_payload(run_dir, deb, charger_sim, gpio_probe, meter_sim=None):
    stage = os.path.join(run_dir, "payload")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    if deb:
        shutil.copy(deb, os.path.join(stage, "paybridge.deb"))
    shutil.copy(charger_sim, os.path.join(stage, "charger-sim"))
    if gpio_probe:
        shutil.copy(gpio_probe, os.path.join(stage, "gpio-probe"))
    if meter_sim:
        shutil.copy(meter_sim, os.path.join(stage, "meter-sim"))
    img = os.path.join(run_dir, "payload.img")
    sh(["mkfs.ext4", "-q", "-F", "-L", "payload", "-d", stage, img, "64M"])
    return img


# ---------------------------------------------------------------------------- the machine

class QMP:
    """QEMU's monitor: one command at a time, events set aside."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rwb")
        self.events = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("QMP closed")
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write((json.dumps(msg) + "\n").encode())
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r.get("return")


class Agent:
    """The guest's command channel (guest/usr/local/sbin/paybridge-test-agent)."""

    def __init__(self, path):
        self.path = path
        self.n = 0
        self.buf = b""
        self.s = None

    def connect(self, timeout, alive=lambda: True):
        deadline = time.monotonic() + timeout
        while self.s is None:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.path)
                self.s = s
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # The agent starts late in boot: ask until it answers.
        while True:
            try:
                rc, out = self.run("echo up", timeout=2)
                if rc == 0 and out.strip() == "up":
                    return
            except TimeoutError:
                pass
            if not alive():
                raise RuntimeError("QEMU exited before the guest agent answered (see console.log, qemu.log)")
            if time.monotonic() > deadline:
                raise TimeoutError("the guest agent never answered (see console.log)")

    def run(self, script, timeout=60):
        self.n += 1
        tag = f"c{self.n}"
        self.s.sendall(f"{tag} {base64.b64encode(script.encode()).decode()}\n".encode())
        marker = f"@@END {tag} ".encode()
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                j = self.buf.find(b"\n", i)
                if j >= 0:
                    rc = int(self.buf[i + len(marker):j])
                    out = self.buf[:i]
                    self.buf = self.buf[j + 1:]
                    # An answer to an earlier command that timed out comes first: drop it.
                    k = out.rfind(b"\n@@END ")
                    if k >= 0:
                        out = out[out.find(b"\n", k + 1) + 1:]
                    if out.endswith(b"\n"):
                        out = out[:-1]
                    return rc, out.decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"guest command timed out: {script}")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise RuntimeError("guest agent channel closed")
            self.buf += chunk

    def out(self, script, timeout=60):
        return self.run(script, timeout)[1]


class TerminalSim:
    """terminal-sim on the host, listening on TCP; QEMU's usb-serial chardev connects to it."""

    def __init__(self, exe, run_dir):
        self.record = os.path.join(run_dir, "terminal-sim.record.jsonl")
        self.logf = open(os.path.join(run_dir, "terminal-sim.log"), "wb")
        # The Apollo's 20 s idle close is a TCP-terminal habit; on a serial cable it would be a
        # spurious unplug (the chardev closing detaches the emulated USB device).
        self.p = subprocess.Popen([exe, "--tcp", "0", "--record", self.record, "--idle-close", "86400000"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.logf)
        line = self.p.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise RuntimeError(f"terminal-sim did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def events(self):
        try:
            with open(self.record) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()


class Machine:
    def __init__(self, image, payload, run_dir, tsim_port):
        self.run_dir = run_dir
        self.console = os.path.join(run_dir, "console.log")
        self.qmp_path = os.path.join(run_dir, "qmp.sock")
        self.agent_path = os.path.join(run_dir, "agent.sock")
        for p in (self.qmp_path, self.agent_path):
            if os.path.exists(p):
                os.unlink(p)
        append = "root=/dev/vda rw console=ttyS0,115200 panic=-1 quiet loglevel=4 net.ifnames=0 mitigations=off " \
                 "systemd.show_status=auto"
        self.cmd = [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "1024",
            "-nodefaults", "-no-reboot", "-display", "none", "-nic", "none",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
            "-append", append,
            "-drive", f"file={os.path.join(image, 'root.img')},format=raw,if=virtio",
            "-drive", f"file={payload},format=raw,if=virtio,readonly=on",
            "-snapshot",
            "-serial", f"file:{self.console}",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=agent",
            "-device", "qemu-xhci,id=xhci",
            "-chardev", f"socket,id=psp,host=127.0.0.1,port={tsim_port},reconnect=1",
            "-device", "usb-serial,id=psp,chardev=psp,bus=xhci.0",
        ]
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                  stdout=open(os.path.join(run_dir, "qemu.log"), "wb"), stderr=subprocess.STDOUT)
        self.qmp = QMP(self.qmp_path)
        self.agent = Agent(self.agent_path)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.qmp.cmd("quit")
            except Exception:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


# ---------------------------------------------------------------------------- the scenarios

class Failed(Exception):
    pass


def wait_for(what, fn, timeout, interval=0.5):
    """fn() until it returns something true; Failed with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def find_key(j, key):
    if isinstance(j, dict):
        if key in j:
            return j[key]
        for v in j.values():
            r = find_key(v, key)
            if r is not None:
                return r
    elif isinstance(j, list):
        for v in j:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


class Scenarios:
    def __init__(self, m, tsim, run_dir):
        self.m, self.a, self.tsim, self.run_dir = m, m.agent, tsim, run_dir
        self.results = []
        self.g_n0, self.g_used = 0, set()

    # -- guest facts

    def gnow(self):
        return int(self.a.out("date +%s%3N"))

    def unit(self):
        out = self.a.out("systemctl show -p ActiveState,SubState,StatusText,NRestarts,MainPID,WatchdogUSec,Result paybridged")
        return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)

    def relays(self):
        out = self.a.out("cat /var/lib/paybridge/relay-history.jsonl 2>/dev/null")
        return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]

    def status(self):
        rc, out = self.a.run("paybridgectl --json status", timeout=20)
        if rc != 0:
            return None
        for l in out.splitlines():
            try:
                j = json.loads(l)
            except ValueError:
                continue
            if find_key(j, "terminal") is not None:
                return j
        return None

    def link(self):
        s = self.status()
        t = find_key(s, "terminal") if s else None
        return t.get("link") if isinstance(t, dict) else None

    def connector(self):
        s = self.status()
        c = find_key(s, "connectors") if s else None
        return c[0] if c else None

    def journal(self, since_ms=None, unit="paybridged"):
        since = f"--since @{since_ms / 1000:.3f}" if since_ms else ""
        return self.a.out(f"journalctl -q -o short-monotonic --no-pager -u {unit} {since}", timeout=30)

    # -- the terminal's books

    def settlements(self, sid):
        return [e for e in self.tsim.events() if e.get("sessionId") == sid and e["event"] in ("committed", "voided")]

    def open_approval(self):
        """The newest approved terminal session not yet committed or voided."""
        ev = self.tsim.events()
        settled = {e.get("sessionId") for e in ev if e["event"] in ("committed", "voided")}
        approved = [e["sessionId"] for e in ev if e["event"] in ("approved", "partiallyApproved")]
        open_ = [s for s in approved if s not in settled]
        return open_[-1] if open_ else None

    def charging_session(self, timeout=90):
        """Waits for a session whose relay is closed: the terminal approved it and the relay history's
        last word is closed. Returns the terminal's session id."""
        def ready():
            sid = self.open_approval()
            if sid is None:
                return None
            r = self.relays()
            c = self.connector()
            if r and r[-1].get("closed") is True and c and c.get("relay") == "closed":
                return sid
            return None
        return wait_for("a charging session (approved, relay closed)", ready, timeout, 1.0)

    def settled_once(self, sid, timeout=60, settle_extra=3.0):
        wait_for(f"terminal session {sid} to be committed or voided", lambda: self.settlements(sid), timeout)
        # A second settlement would come right behind the first (a replay after the link or the
        # daemon came back): give it the time to show before counting.
        time.sleep(settle_extra)
        s = self.settlements(sid)
        if len(s) != 1:
            raise Failed(f"terminal session {sid} settled {len(s)} times: {s}")
        return s[0]

    # -- the runner

    def run(self, name, fn):
        t = time.monotonic()
        evidence = []
        try:
            fn(evidence)
            ok, why = True, ""
        except Failed as e:
            ok, why = False, str(e)
        except Exception as e:  # a broken channel is the scenario failing, not the harness crashing
            ok, why = False, f"{type(e).__name__}: {e}"
        dt = time.monotonic() - t
        self.results.append((name, ok, dt))
        print(f"\n=== {'PASS' if ok else 'FAIL'}: {name} ({dt:.0f} s)" + (f": {why}" if why else ""))
        for e in evidence:
            for line in str(e).splitlines():
                print(f"    {line}")
        sys.stdout.flush()
        return ok

    # 1 ------------------------------------------------------------------
    def s1_install(self, ev):
        rc, out = self.a.run("dpkg -i /opt/paybridge-test/paybridge.deb", timeout=180)
        ev.append(f"dpkg -i (exit {rc}):\n" + out.strip())
        if rc != 0:
            raise Failed("dpkg -i failed")
        u = wait_for("paybridged active", lambda: (lambda u: u if u.get("ActiveState") == "active" else None)(self.unit()), 60)
        rc, active = self.a.run("systemctl is-active paybridged")
        ev.append(f"systemctl is-active paybridged: {active.strip()}")
        ev.append("systemctl show: " + ", ".join(f"{k}={u.get(k)}" for k in ("ActiveState", "SubState", "StatusText", "NRestarts", "WatchdogUSec")))
        if active.strip() != "active":
            raise Failed("not active")
        if not u.get("StatusText"):
            raise Failed("no STATUS= text")
        if u.get("NRestarts") != "0":
            raise Failed(f"restarted {u.get('NRestarts')} times while installing")
        # Under Type=notify systemd calls the unit active only once READY=1 arrived.
        typ = self.a.out("systemctl show -p Type --value paybridged").strip()
        enabled = self.a.out("systemctl is-enabled paybridged").strip()
        ev.append(f"Type={typ} (active means READY=1 was received), is-enabled: {enabled}")
        if typ != "notify":
            raise Failed(f"Type={typ}: active does not prove READY=1")
        if enabled != "enabled":
            raise Failed("the postinst did not enable the service")
        j = self.journal()
        ev.append("journal (first lines):\n" + "\n".join(j.splitlines()[:8]))

    def s1_verify(self, ev):
        # As the issue asks: plain verify, which also runs man(1) for every Documentation=man:
        # page. --man=no is shown beside it to tell a unit problem from a missing page.
        rc, out = self.a.run("systemd-analyze verify /usr/lib/systemd/system/paybridged.service", timeout=60)
        ev.append(f"systemd-analyze verify /usr/lib/systemd/system/paybridged.service (exit {rc}): {out.strip() or '(nothing)'}")
        rc2, out2 = self.a.run("systemd-analyze verify --man=no /usr/lib/systemd/system/paybridged.service "
                               "/usr/lib/systemd/system/paybridged.socket", timeout=60)
        ev.append(f"systemd-analyze verify --man=no paybridged.service paybridged.socket (exit {rc2}): {out2.strip() or '(nothing)'}")
        if rc != 0 or out.strip():
            raise Failed("systemd-analyze verify printed something" + ("" if rc2 == 0 and not out2.strip() else
                                                                      " (with --man=no too)"))

    # 2 ------------------------------------------------------------------
    def s2_usb(self, ev):
        out = self.a.out("stat -L -c '%G %a %n' /dev/ttyPSP; readlink -f /dev/ttyPSP; "
                         "udevadm info -q property -n /dev/ttyPSP | grep -E 'ID_VENDOR_ID|ID_MODEL_ID|DEVLINKS'")
        ev.append("/dev/ttyPSP: " + out.replace("\n", " | "))
        first = out.splitlines()[0].split() if out else []
        if first[:2] != ["paybridge", "660"]:
            raise Failed(f"/dev/ttyPSP is not group paybridge mode 0660: {out.splitlines()[:1]}")
        sid = self.charging_session()
        n0 = self.unit().get("NRestarts")
        ev.append(f"session charging: terminal session {sid}, relay history {self.relays()[-1]}")
        self.m.qmp.cmd("device_del", id="psp")
        t_del = time.monotonic()
        wait_for("/dev/ttyPSP to go", lambda: self.a.run("test -e /dev/ttyPSP")[0] != 0, 30)
        wait_for("the daemon to see the link down", lambda: self.link() == "down", 60)
        ev.append(f"device_del psp: /dev/ttyPSP gone, link down after {time.monotonic() - t_del:.1f} s")
        time.sleep(2)
        self.m.qmp.cmd("device_add", driver="usb-serial", id="psp", chardev="psp", bus="xhci.0")
        t_add = time.monotonic()
        wait_for("/dev/ttyPSP back", lambda: self.a.run("test -e /dev/ttyPSP")[0] == 0, 30)
        wait_for("the link up again", lambda: self.link() == "up", 60)
        ev.append(f"device_add psp: link up after {time.monotonic() - t_add:.1f} s; connector {json.dumps(self.connector())}")
        n1 = self.unit().get("NRestarts")
        if n1 != n0:
            raise Failed(f"the daemon restarted across the unplug (NRestarts {n0} -> {n1})")
        rc, out = self.a.run("paybridgectl stop 1 --reason hil-usb-replug")
        ev.append(f"paybridgectl stop 1 (exit {rc}): {out.strip()}")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} settled once: {json.dumps(s)}")
        r = self.relays()
        ev.append(f"relay history last: {r[-1] if r else None}")

    # 3 ------------------------------------------------------------------
    def s3_watchdog(self, ev):
        sid = self.charging_session()
        u0 = self.unit()
        ev.append(f"before: terminal session {sid} charging; MainPID={u0.get('MainPID')} NRestarts={u0.get('NRestarts')} WatchdogUSec={u0.get('WatchdogUSec')}")
        t_kill = self.gnow()
        self.a.run(f"kill -STOP {u0['MainPID']}")
        def restarted():
            u = self.unit()
            return u if int(u.get("NRestarts", "0")) > int(u0.get("NRestarts", "0")) and u.get("ActiveState") == "active" else None
        u1 = wait_for("systemd to restart paybridged", restarted, 120, 1.0)
        ev.append(f"after: MainPID={u1.get('MainPID')} NRestarts={u1.get('NRestarts')} ActiveState={u1.get('ActiveState')} StatusText={u1.get('StatusText')}")
        after = [r for r in self.relays() if r.get("t", 0) >= t_kill]
        ev.append(f"relay history since kill -STOP (guest ms {t_kill}): {after}")
        j = self.a.out(f"journalctl -q --no-pager -o short-unix -u paybridged --since @{t_kill / 1000:.3f} | grep -iE 'watchdog|abort|core|Main process|Scheduled restart|Started' | head -8")
        ev.append("journal:\n" + j)
        def when(pattern):
            for l in j.splitlines():
                if pattern in l:
                    return int(float(l.split()[0]) * 1000)
            return None
        t_abort, t_restart = when("Watchdog timeout"), when("Scheduled restart")
        if t_abort is None or t_restart is None:
            raise Failed("the journal shows no watchdog timeout and restart")
        # Down = from the watchdog's abort until systemd schedules the new process. An open written
        # by the restarted daemon's start-up does not count: the relay must be open before that.
        down = [r for r in after if t_abort - 50 <= r.get("t", 0) <= t_restart + 50]
        ev.append(f"kill -STOP to watchdog abort: {(t_abort - t_kill) / 1000:.1f} s with the relay as it was (closed): "
                  "a hung daemon holds the relay until WatchdogSec runs out")
        ev.append(f"down from {t_abort} to {t_restart}: relay changes while down {down}")
        if not down or down[-1].get("closed") is not False:
            raise Failed("no relay open recorded between the watchdog's abort and the restart "
                         "(the only open in the history is the restarted daemon's)")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} settled once after the restart: {json.dumps(s)}")

    # 4 ------------------------------------------------------------------
    def s4_reload_stop(self, ev, amount=4321):
        sid = self.charging_session()
        n_before = len(self.tsim.events())
        t_reload = self.gnow()
        rc, out = self.a.run(f"sed -i 's/^payment\\.preauth *=.*/payment.preauth = {amount}/' /etc/paybridge/paybridge.conf && "
                             f"grep -q '^payment.preauth = {amount}' /etc/paybridge/paybridge.conf || echo 'payment.preauth = {amount}' >> /etc/paybridge/paybridge.conf; "
                             "systemctl reload paybridged")
        ev.append(f"payment.preauth = {amount}; systemctl reload (exit {rc}) {out.strip()}")
        if rc != 0:
            raise Failed("systemctl reload failed")
        wait_for("the daemon to log the reload", lambda: "payment.preauth" in self.a.out(
            f"journalctl -q --no-pager -u paybridged --since @{t_reload / 1000:.3f} | grep -i 'reload'"), 30)
        # terminal-sim's "at" is the host's CLOCK_MONOTONIC: every scan started from here on was
        # asked for after the daemon applied the new file.
        t_applied = time.monotonic_ns()
        ev.append("journal after reload:\n" + self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_reload / 1000:.3f} | grep -iE 'reload|preauth|SIGHUP|re-read|amount' | head -6"))
        rc, out = self.a.run("paybridgectl stop 1 --reason hil-reload")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} (started before the reload) settled once: {json.dumps(s)}")
        started = wait_for(f"a session armed for {amount}",
                           lambda: [e for e in self.tsim.events()[n_before:] if e["event"] == "started" and e.get("amount") == amount], 60)
        ev.append(f"terminal armed for the new amount: {json.dumps(started[0])}")
        old = [e for e in self.tsim.events()[n_before:] if e["event"] == "started" and e.get("amount") != amount and e["at"] > t_applied]
        if old:
            raise Failed(f"scans started after the reload with the old amount: {old}")
        sid2 = self.charging_session()
        t_stop = self.gnow()
        rc, out = self.a.run("systemctl stop paybridged; systemctl show -p ActiveState,Result paybridged", timeout=120)
        ev.append(f"systemctl stop with terminal session {sid2} charging: {out.strip()}")
        after = [r for r in self.relays() if r.get("t", 0) >= t_stop]
        ev.append(f"relay history since the stop: {after}")
        if not after or after[-1].get("closed") is not False:
            raise Failed("the relay is not open after systemctl stop")
        ev.append("journal of the stop:\n" + self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_stop / 1000:.3f} | tail -8"))
        t_start = self.gnow()
        rc, out = self.a.run("systemctl start paybridged; systemctl is-active paybridged", timeout=120)
        if out.strip() != "active":
            raise Failed(f"paybridged did not start again: {out}")
        s = self.settled_once(sid2)
        ev.append(f"terminal session {sid2} settled once: {json.dumps(s)}")
        j = self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_start / 1000:.3f}")
        bad = [l for l in j.splitlines() if any(w in l.lower() for w in ("corrupt", "damaged", "truncat", "checksum", "error"))]
        ev.append("journal of the next start:\n" + "\n".join(j.splitlines()[:10]))
        rc, out = self.a.run("paybridgectl --json sessions --open")
        ev.append(f"paybridgectl sessions --open (exit {rc}):\n{out.strip()}")
        still = [x for x in (find_key(json.loads(out.splitlines()[0]), "sessions") or []) if x.get("terminal_reference") == str(sid2)] if rc == 0 and out.strip() else None
        if still is None:
            raise Failed("paybridgectl sessions --open gave no answer")
        if still:
            raise Failed(f"the session stopped with the daemon is still open after the next start: {still}")
        if " in doubt" in j and " 0 in doubt" not in j:
            raise Failed("recovery left sessions in doubt")
        if bad:
            raise Failed("the next start logged ledger trouble:\n" + "\n".join(bad))

    # G ------------------------------------------------------------------ GPIO relays (issue 16)
    # One gpio-sim chip, labelled so that the probe finds it by label: line 0 a relay coil
    # (active high), 1 its mirror contact, 2 a plug-detect input, 3 an active-low coil. A shell
    # loop stands in for the contactor: it follows line 0's driven value onto line 1's pull every
    # 10 ms (nothing notifies a change of a sim line's value), unless /run/gpio-weld (stuck closed)
    # or /run/gpio-refuse (never closes) exists; /run/gpio-plug sets the plug line.
    GPIO_CFG = "/sys/kernel/config/gpio-sim/paybridge"
    GPIO_LABEL = "paybridge-sim"
    PROBE = "/opt/paybridge-test/gpio-probe"

    def gpio_probe(self, args, timeout=60):
        # No signal left over from a failed step; the contactor follows the coil again.
        self.a.run("rm -f /run/gpio-weld /run/gpio-refuse /run/gpio-plug; sleep 0.3")
        return self.a.run(f"{self.PROBE} --chip {self.GPIO_LABEL} {args}", timeout=timeout)

    def sim(self, line, attr="value"):
        return self.a.out(f"cat {self.gpio_sys}/sim_gpio{line}/{attr}").strip()

    def g0_gpio_sim(self, ev):
        t = time.monotonic()
        rc, out = self.a.run(f"""set -e
modprobe gpio-sim
C={self.GPIO_CFG}
mkdir $C $C/bank0
echo 4 > $C/bank0/num_lines
echo {self.GPIO_LABEL} > $C/bank0/label
i=0; for n in relay-coil relay-mirror plug-detect relay-coil-n; do mkdir $C/bank0/line$i; echo $n > $C/bank0/line$i/name; i=$((i+1)); done
echo 1 > $C/live
echo /sys/devices/platform/$(cat $C/dev_name)/$(cat $C/bank0/chip_name)
""")
        ev.append(f"modprobe gpio-sim and one configfs chip (exit {rc}, {time.monotonic() - t:.1f} s): {out.strip()}")
        if rc != 0:
            raise Failed("gpio-sim did not load or configure")
        self.gpio_sys = out.strip().splitlines()[-1]
        ev.append("dmesg: " + self.a.out("dmesg | grep -iE 'gpio.sim|taint' | tail -3").replace("\n", " | "))
        rc, out = self.a.run(f"{self.PROBE} info {self.GPIO_LABEL}")
        ev.append(f"gpio-probe info {self.GPIO_LABEL} (exit {rc}):\n{out.strip()}")
        if rc != 0 or "name=relay-mirror" not in out:
            raise Failed("the chip or its named lines were not found by label (GPIO_GET_CHIPINFO, GPIO_V2_GET_LINEINFO)")
        # The active-low coil's board pulls it up: released, it is de-energised.
        self.a.run(f"echo pull-up > {self.gpio_sys}/sim_gpio3/pull")
        # Every change of the coil is logged with the guest's wall clock (G4-G6 compare it with
        # the daemon's journal and the approval).
        follower = f"""S={self.gpio_sys}; last=; lastv=
while :; do
  v=$(cat $S/sim_gpio0/value)
  [ "$v" != "$lastv" ] && echo "$(date +%s%3N) $v" >> /run/coil.log && lastv=$v
  if [ -e /run/gpio-weld ]; then p=pull-up; elif [ -e /run/gpio-refuse ]; then p=pull-down;
  elif [ "$v" = 1 ]; then p=pull-up; else p=pull-down; fi
  [ "$p" != "$last" ] && echo $p > $S/sim_gpio1/pull && last=$p
  if [ -e /run/gpio-plug ]; then q=pull-up; else q=pull-down; fi
  [ "$q" != "$lastq" ] && echo $q > $S/sim_gpio2/pull && lastq=$q
  sleep 0.01
done"""
        rc, out = self.a.run("systemd-run --quiet --unit=paybridge-sim-contactor --collect bash -c " + shlex.quote(follower))
        if rc != 0:
            raise Failed(f"the simulated contactor did not start: {out}")

    def g1_follow(self, ev):
        t = time.monotonic()
        # 2 s, not 500 ms: the simulated contactor is a shell loop in a TCG guest and, on a busy
        # CI machine, once took longer than 500 ms to follow the open (read as welded).
        rc, out = self.gpio_probe("--relay relay-coil --mirror relay-mirror --plug plug-detect --feedback-ms 2000 "
                                  "close expect:closed sleep:300 open expect:opened "
                                  "touch:/run/gpio-plug expect:plug-in:3000 rm:/run/gpio-plug expect:plug-out:3000")
        ev.append(f"gpio-probe close/open and plug (exit {rc}, {time.monotonic() - t:.1f} s):\n{out.strip()}")
        if rc != 0:
            raise Failed("the relay's close and open were not confirmed by the mirror, or the plug not seen")
        ev.append(f"after the probe: coil value {self.sim(0)}, mirror value {self.sim(1)}")
        if self.sim(0) != "0":
            raise Failed("the coil line is not de-energised after the probe ended")

    def g2_welded_refused(self, ev):
        t = time.monotonic()
        rc, out = self.gpio_probe("--relay relay-coil --mirror relay-mirror --feedback-ms 2000 "
                                  "close expect:closed touch:/run/gpio-weld sleep:300 open expect:welded:5000 "
                                  "close expect:refused")
        self.a.run("rm -f /run/gpio-weld")
        ev.append(f"welded: gpio-probe (exit {rc}, {time.monotonic() - t:.1f} s):\n{out.strip()}")
        if rc != 0:
            raise Failed("a mirror that stayed closed after the open was not reported welded (or a close was driven after it)")
        time.sleep(0.5)
        rc, out = self.gpio_probe("--relay relay-coil --mirror relay-mirror --feedback-ms 2000 "
                                  "touch:/run/gpio-refuse sleep:300 close expect:refused:5000 rm:/run/gpio-refuse quiet:1000")
        ev.append(f"refused: gpio-probe (exit {rc}):\n{out.strip()}")
        if rc != 0:
            raise Failed("a mirror that never closed was not reported refused to close")

    def g3_sigkill(self, ev):
        for relay, extra, energised, released in (("relay-coil", "--mirror relay-mirror", "1", "0"),
                                                   ("relay-coil-n", "--active-low", "0", "1")):
            rc, out = self.a.run(f"rm -f /run/probe.out /run/gpio-weld /run/gpio-refuse; sleep 0.3; setsid {self.PROBE} --chip {self.GPIO_LABEL} --relay {relay} {extra} "
                                 "close expect:closed hold > /run/probe.out 2>&1 & echo $!")
            pid = out.strip().splitlines()[-1]
            try:
                wait_for("the probe holding the relay closed", lambda: "HOLDING" in self.a.out("cat /run/probe.out"), 30)
            except Failed:
                ev.append("gpio-probe:\n" + self.a.out("cat /run/probe.out"))
                raise
            line = 0 if relay == "relay-coil" else 3
            held = self.sim(line)
            mirror = self.sim(1) if line == 0 else "-"
            info = self.a.out(f"{self.PROBE} info {self.GPIO_LABEL} | grep 'name={relay} '")
            t_kill = time.monotonic()
            self.a.run(f"kill -9 {pid}")
            after = wait_for("the coil line released", lambda: (lambda v: v if v == released else None)(self.sim(line)), 10, 0.1)
            dt = time.monotonic() - t_kill
            time.sleep(0.3)
            info2 = self.a.out(f"{self.PROBE} info {self.GPIO_LABEL} | grep 'name={relay} '")
            ev.append(f"{relay} {extra}: held closed: value {held} (energised = {energised}), mirror {mirror}; {info.strip()}")
            ev.append(f"  kill -9: value {after} within {dt:.1f} s (released = {released}); mirror {self.sim(1)}; {info2.strip()}")
            if held != energised:
                raise Failed(f"{relay} was not driven to {energised} while closed")
            if "consumer=gpio-probe" in info2:
                raise Failed(f"{relay} is still requested after SIGKILL")
        rc, out = self.a.run(f"{self.PROBE} deenergise {self.GPIO_LABEL} relay-coil && cat {self.gpio_sys}/sim_gpio0/value")
        ev.append(f"gpio-probe deenergise (what an ExecStopPost would run; exit {rc}): {out.strip()}")
        if rc != 0 or not out.strip().endswith("0"):
            raise Failed("deenergise did not leave the coil line at 0")
        ev.append("gpio-sim returns a released line to its pull, as a board's pull resistor does; a real SoC may keep "
                  "driving the last level, which is why the wiring (pull to de-energised) and ExecStopPost matter")

    # G4-G6 ------------------------------------------------------------ the daemon on GPIO lines
    # The installed package's paybridged under systemd with charger.io = gpio on G0's gpio-sim
    # lines (the same contactor loop plays the contactor; /run/gpio-plug is the car), its meter
    # meter-sim on a pty in the guest, the terminal terminal-sim on the emulated FTDI as before.
    METER_SIM = "/opt/paybridge-test/meter-sim"
    METER_START_WH = 1_000_000
    # milli-minor units per kWh: 1.234 minor units per Wh, so the check is not the identity.
    TARIFF_MILLI_PER_KWH = 1_234_000

    @staticmethod
    def tariff_cost(wh, milli_per_kwh):
        """PaymentEngine's Tariff.cost for energy only: rounded once, half up."""
        return (wh * milli_per_kwh * 60 + 30_000_000) // 60_000_000

    def meter(self, cmd):
        """One meter-sim command through its FIFO; its answer line."""
        n = len(self.a.out("cat /run/meter.out").splitlines())
        self.a.run(f"echo {shlex.quote(cmd)} > /run/meter.in")
        return wait_for(f"meter-sim's answer to {cmd}", lambda: (lambda ls: ls[n] if len(ls) > n else None)(
            self.a.out("cat /run/meter.out").splitlines()), 10, 0.2)

    def meter_wh(self):
        words = self.meter("show 1").split()
        return int(words[words.index("energy") + 1])

    def coil_log(self, since_ms=0):
        out = self.a.out("cat /run/coil.log 2>/dev/null")
        return [(int(t), v) for t, v in (l.split() for l in out.splitlines() if l.strip()) if int(t) >= since_ms]

    def gsession(self, n_events):
        """A terminal session approved after the terminal's record held n_events events, not yet
        settled nor used by an earlier G scenario."""
        ev = self.tsim.events()[n_events:]
        settled = {e.get("sessionId") for e in ev if e["event"] in ("committed", "voided")}
        approved = [e["sessionId"] for e in ev if e["event"] in ("approved", "partiallyApproved")
                    and e["sessionId"] not in settled and e["sessionId"] not in self.g_used]
        return approved[-1] if approved else None

    def journal_line_ms(self, pattern, since_ms):
        out = self.a.out(f"journalctl -q --no-pager -o short-unix -u paybridged --since @{since_ms / 1000:.3f} | grep -E {shlex.quote(pattern)} | head -1")
        return (int(float(out.split()[0]) * 1000), out.strip()) if out.strip() else (None, "")

    def plug_and_charge(self, ev, n_events, what):
        """Waits for an approval (coil still off), plugs the car in and waits for the coil and
        its mirror; returns (terminal session id, guest ms when the approval was seen)."""
        sid = wait_for(f"{what}: a card approved by the terminal", lambda: self.gsession(n_events), 90, 0.5)
        self.g_used.add(sid)
        t_seen = self.gnow()
        c = self.connector()
        ev.append(f"{what}: terminal session {sid} approved; coil {self.sim(0)}, connector {json.dumps(c)}")
        if self.sim(0) != "0":
            raise Failed("the coil is energised before the car plugged in")
        t_plug = self.gnow()
        self.a.run("touch /run/gpio-plug")
        wait_for("the coil energised and the mirror closed", lambda: self.sim(0) == "1" and self.sim(1) == "1", 30, 0.2)
        ev.append(f"{what}: plugged in at {t_plug}; coil 1 and mirror 1 after {(self.gnow() - t_plug) / 1000:.1f} s "
                  f"(coil log since plug: {self.coil_log(t_plug)})")
        wait_for("the daemon's relay closed", lambda: (self.connector() or {}).get("relay") == "closed", 30, 0.5)
        return sid, t_seen, t_plug

    def g4_daemon_session(self, ev):
        t0 = self.gnow()
        conf = "/etc/paybridge/paybridge.conf"
        keys = [("charger.io", "gpio"),
                ("charger.gpio.1.relay", f"{self.GPIO_LABEL}:relay-coil"),
                ("charger.gpio.1.mirror", f"{self.GPIO_LABEL}:relay-mirror"),
                ("charger.gpio.1.plug", f"{self.GPIO_LABEL}:plug-detect"),
                ("relay.feedback_ms", "2000"),   # a shell-loop contactor in a TCG guest on a busy machine
                ("meter.device", "$PTY"), ("meter.poll_ms", "500"), ("charger.meter.1", "1:sdm630"),
                ("tariff.start_fee", "0"), ("tariff.time_per_minute_milli", "0"),
                ("tariff.energy_per_kwh_milli", str(self.TARIFF_MILLI_PER_KWH))]
        setk = "\n".join(f'k={shlex.quote(k)}; v="{v}"; if grep -q "^$k *=" {conf}; then sed -i "s|^$k *=.*|$k = $v|" {conf}; '
                         f'else echo "$k = $v" >> {conf}; fi' for k, v in keys)
        rc, out = self.a.run(f"""set -e
rm -f /run/gpio-plug /run/gpio-weld /run/gpio-refuse /run/meter.in /run/meter.out
mkfifo /run/meter.in
systemd-run --quiet --unit=paybridge-sim-meter --collect bash -c 'exec 3<>/run/meter.in; exec {self.METER_SIM} --meter 1:sdm630:20261206:0:{self.METER_START_WH} <&3 >/run/meter.out 2>/run/meter.err'
for i in $(seq 100); do [ -s /run/meter.out ] && break; sleep 0.1; done
PTY=$(head -1 /run/meter.out | cut -d' ' -f2)
chown paybridge:paybridge $PTY
# udev: the package's rule gives group paybridge the chips a local rule marks (here gpio-sim's).
echo 'ACTION!="remove", SUBSYSTEM=="gpio", KERNEL=="gpiochip*", DRIVERS=="gpio-sim", ENV{{PAYBRIDGE_GPIO}}="1"' > /etc/udev/rules.d/59-paybridge-local.rules
udevadm control --reload; udevadm trigger --subsystem-match=gpio --action=add; udevadm settle
cp -n {conf} {conf}.before-gpio
{setk}
mkdir -p /etc/systemd/system/paybridged.service.d
printf '%s\\n' '[Service]' 'ExecStart=' 'ExecStart=/usr/bin/paybridged --config /etc/paybridge/paybridge.conf' 'DeviceAllow=char-pts rw' > /etc/systemd/system/paybridged.service.d/60-hil-gpio.conf
echo "meter-sim: $(head -1 /run/meter.out) ($(stat -c '%U %a' $PTY))"
echo "chips: $(for c in /dev/gpiochip*; do stat -c '%n %G %a' $c; done | tr '\\n' ' ')"
grep -E '^(charger\\.io|charger\\.gpio\\.1|relay\\.feedback|meter\\.|charger\\.meter\\.1|tariff\\.)' {conf} | grep -v '= *$'
""", timeout=60)
        ev.append(f"setup (exit {rc}):\n{out.strip()}")
        if rc != 0:
            raise Failed("meter-sim, the udev rule or the configuration could not be set up")
        chip = self.gpio_sys.rsplit("/", 1)[1]
        if f"/dev/{chip} paybridge 660" not in out:
            raise Failed(f"/dev/{chip} (gpio-sim) is not group paybridge 0660 after the package's udev rule")
        n0 = self.g_n0 = len(self.tsim.events())
        self.g_used = set()
        t_start = self.gnow()
        rc, out = self.a.run("systemctl daemon-reload; systemctl restart paybridged; systemctl is-active paybridged; "
                             "systemctl show -p ExecStopPost --value paybridged | head -c 200", timeout=120)
        ev.append(f"systemctl restart with charger.io = gpio: {out.strip()}")
        if not out.strip().startswith("active"):
            ev.append("journal:\n" + self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_start / 1000:.3f} | tail -15"))
            raise Failed("paybridged is not active with charger.io = gpio")
        ev.append("journal of the start:\n" + self.a.out(f"journalctl -q --no-pager -o short-unix -u paybridged --since @{t_start / 1000:.3f} "
                                                      "| sed -n '/Starting paybridged/,$p' | grep -v 'card \\(read\\|refused\\)\\|session cancelled' | head -12"))
        e0 = self.meter_wh()
        sid, t_seen, t_plug = self.plug_and_charge(ev, n0, "G4")
        t_appr, l_appr = self.journal_line_ms("approved|authori[sz]ed", t_start)
        highs = [t for t, v in self.coil_log(t_start) if v == "1"]
        ev.append(f"guest ms: daemon restarted {t_start}, approval seen {t_seen} (journal {t_appr}: {l_appr.strip()[:160]}), "
                  f"plug {t_plug}, first coil high {highs[0] if highs else None}")
        if not highs:
            raise Failed("the coil log shows no energised coil")
        if highs[0] < t_plug:
            raise Failed("the coil was energised before the approval and the plug")
        self.meter("power 1 22000")
        time.sleep(4)
        self.meter("power 1 0")
        time.sleep(2)  # four polls at 500 ms: the daemon has read the final register
        e1 = self.meter_wh()
        ev.append(f"meter-sim register: {e0} Wh before, {e1} Wh after ({e1 - e0} Wh at 22 kW for 4 s and the agent's round trips)")
        if e1 <= e0:
            raise Failed("meter-sim's register did not advance")
        t_unplug = self.gnow()
        self.a.run("rm -f /run/gpio-plug")
        wait_for("the coil off after the unplug", lambda: self.sim(0) == "0", 30, 0.2)
        ev.append(f"unplugged: coil 0 after {(self.gnow() - t_unplug) / 1000:.1f} s; mirror {self.sim(1)}")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} settled once: {json.dumps(s)}")
        row = self.session_row(sid)
        ev.append(f"paybridgectl --json sessions, the session: {json.dumps(row)}")
        if row is None:
            raise Failed("the session is not in paybridgectl sessions")
        want = self.tariff_cost(e1 - e0, self.TARIFF_MILLI_PER_KWH)
        got = s.get("amount")
        ev.append(f"tariff {self.TARIFF_MILLI_PER_KWH} milli/kWh x ({e1} - {e0}) Wh = {want}; terminal captured {got} ({s['event']}); "
                  f"ledger meter {row.get('meter_start_wh')} -> {row.get('meter_end_wh')}, captured_minor {row.get('captured_minor')}")
        if (row.get("meter_start_wh"), row.get("meter_end_wh")) != (e0, e1):
            raise Failed("the ledger's meter readings are not meter-sim's register")
        if s["event"] != "committed" or got != want or row.get("captured_minor") != want:
            raise Failed(f"captured {got} (ledger {row.get('captured_minor')}), the tariff on the register difference is {want}")

    def g5_sigkill_daemon(self, ev):
        sid, _, _ = self.plug_and_charge(ev, self.g_n0, "G5")
        e0 = self.meter_wh()
        # Past the engine's durable meter step (meterPersistWh, 100 Wh): recovery captures the
        # last durable reading, so there is something to capture after the kill.
        # 20 kW: below charger.max_power_w (22 kW by default), above which a reading is refused.
        self.meter("power 1 20000")
        def live_wh():
            sess = (self.connector() or {}).get("session") or {}
            return sess.get("energy_wh") if (sess.get("energy_wh") or 0) >= 120 else None
        live = wait_for("120 Wh metered live", live_wh, 90, 0.3)
        u0 = self.unit()
        t_kill = self.gnow()
        self.a.run(f"kill -9 {u0['MainPID']}")
        low = wait_for("the coil de-energised after SIGKILL", lambda: self.sim(0) == "0", 10, 0.05)
        dt = (self.gnow() - t_kill) / 1000
        self.meter("power 1 0")
        e_kill = self.meter_wh()
        self.a.run("rm -f /run/gpio-plug")  # the car leaves while the daemon is down
        # A pty artefact: the killed daemon's TIOCEXCL outlives it because meter-sim holds the
        # master (a real tty is released, exclusivity and all, at its last close). Root lifts it,
        # as that last close would, so the restarted daemon (not root) can open its meter.
        rc, out = self.a.run("perl -e 'open(my $f, \"+<\", $ARGV[0]) or die $!; ioctl($f, 0x540D, 0) or die $!' "
                             "$(head -1 /run/meter.out | cut -d' ' -f2)")
        ev.append(f"meter-sim register {e0} Wh at the plug, {e_kill} Wh at the kill (live {live} Wh); TIOCNXCL on the meter pty: exit {rc} {out.strip()}")
        def restarted():
            u = self.unit()
            return u if int(u.get("NRestarts", "0")) > int(u0.get("NRestarts", "0")) and u.get("ActiveState") == "active" else None
        u1 = wait_for("systemd to restart paybridged", restarted, 60, 0.5)
        lows = [t for t, v in self.coil_log(t_kill) if v == "0"]
        ev.append(f"kill -9 {u0['MainPID']} with terminal session {sid} charging: coil 0 in the contactor loop's log "
                  f"{(lows[0] - t_kill) / 1000 if lows else None} s after the kill (seen by the agent's polling after {dt:.2f} s); "
                  f"restarted: MainPID {u1.get('MainPID')} NRestarts {u0.get('NRestarts')} -> {u1.get('NRestarts')}")
        j = self.a.out(f"journalctl -q --no-pager -o short-unix -u paybridged --since @{t_kill / 1000:.3f} | "
                       "grep -iE 'de-energised|deenergise|Main process|Scheduled restart|Started|ExecStopPost|Control process' | head -10")
        ev.append("journal since the kill:\n" + j)
        ev.append(f"coil log since the kill: {self.coil_log(t_kill)}")
        if "relays de-energised" not in j:
            raise Failed("ExecStopPost's paybridged --deenergise-relays did not log in the journal")
        t_de = next((int(float(l.split()[0]) * 1000) for l in j.splitlines() if "relays de-energised" in l), None)
        t_rs = next((int(float(l.split()[0]) * 1000) for l in j.splitlines() if "Scheduled restart" in l), None)
        if t_rs is not None and t_de is not None and t_de > t_rs:
            raise Failed("the relays were de-energised only after the restart was scheduled")
        if any(v == "1" for _, v in self.coil_log(t_kill)):
            raise Failed("the coil was energised again after the kill")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} settled once after the restart: {json.dumps(s)}")
        row = self.session_row(sid)
        ev.append(f"the ledger's row: {json.dumps(row)}")
        j2 = self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_kill / 1000:.3f} | grep -E 'ledger:|meter|session {(row or {}).get('session')} ' | head -8")
        ev.append("journal of the recovery:\n" + j2)
        wh = (row or {}).get("energy_wh")
        if wh is None or not (100 <= wh <= e_kill - e0):
            raise Failed(f"recovery settled {wh} Wh: not the last durable reading (>= 100 Wh, <= the {e_kill - e0} Wh delivered)")
        want = self.tariff_cost(wh, self.TARIFF_MILLI_PER_KWH)
        if s["event"] != "committed" or s.get("amount") != want:
            raise Failed(f"captured {s.get('amount')} ({s['event']}), the tariff on the durable {wh} Wh is {want}")
        ev.append(f"captured {s.get('amount')} = tariff on the last durable {wh} Wh (of {e_kill - e0} Wh delivered before the kill)")
        if "in use by another process" in self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t_kill / 1000:.3f}"):
            raise Failed("the restarted daemon could not open its meter")

    def session_row(self, sid):
        rc, out = self.a.run("paybridgectl --json sessions", timeout=30)
        rows = []
        for l in out.splitlines():
            try:
                rows += [r for r in (find_key(json.loads(l), "sessions") or []) if r.get("terminal_reference") == str(sid)]
            except ValueError:
                pass
        return rows[-1] if rows else None

    def g6_welded_latch(self, ev):
        sid, _, _ = self.plug_and_charge(ev, self.g_n0, "G6")
        self.a.run("touch /run/gpio-weld; sleep 0.3; rm -f /run/gpio-plug")
        t = self.gnow()
        def latched():
            c = self.connector()
            return c if c and c.get("latched") == "welded relay" else None
        c = wait_for("the connector latched (welded relay)", latched, 30, 0.5)
        ev.append(f"contact stuck closed, car unplugged: coil {self.sim(0)}, mirror {self.sim(1)}; after {(self.gnow() - t) / 1000:.1f} s "
                  f"connector {json.dumps(c)}")
        if self.sim(0) != "0":
            raise Failed("the coil is still driven after the open")
        ev.append("journal: " + self.a.out(f"journalctl -q --no-pager -u paybridged --since @{t / 1000:.3f} | grep -iE 'weld' | head -3"))
        ev.append("STATE/connector-faults: " + self.a.out("cat /var/lib/paybridge/connector-faults"))
        rc, out = self.a.run("systemctl restart paybridged; systemctl is-active paybridged", timeout=120)
        c = wait_for("the status after the restart", lambda: self.connector(), 30, 0.5)
        ev.append(f"systemctl restart ({out.strip()}): connector {json.dumps(c)}; paybridgectl status: "
                  + self.a.out("paybridgectl status | grep -iE 'connector|weld' | head -3").replace("\n", " | "))
        if c.get("latched") != "welded relay":
            raise Failed("the latch did not survive systemctl restart")
        rc, out = self.a.run("paybridgectl clear-fault 1")
        ev.append(f"clear-fault 1 with the mirror at {self.sim(1)}: exit {rc}: {out.strip()}")
        if rc == 0 or (self.connector() or {}).get("latched") != "welded relay":
            raise Failed("clear-fault was accepted while the contact reads closed")
        self.a.run("rm -f /run/gpio-weld")
        wait_for("the mirror open", lambda: self.sim(1) == "0", 10, 0.2)
        time.sleep(0.5)  # the daemon's debounce
        rc, out = self.a.run("paybridgectl clear-fault 1")
        c = self.connector()
        ev.append(f"clear-fault 1 with the mirror at {self.sim(1)}: exit {rc}: {out.strip()}; connector {json.dumps(c)}; "
                  f"STATE/connector-faults: {self.a.out('cat /var/lib/paybridge/connector-faults').strip()!r}")
        if rc != 0 or (c or {}).get("latched") is not None:
            raise Failed("clear-fault was refused (or the latch stayed) after the contact opened")
        s = self.settled_once(sid)
        ev.append(f"terminal session {sid} settled once: {json.dumps(s)}")

    def final_books(self, ev):
        """Across the whole run: no terminal session settled twice, and every approval settled
        except at most the one still charging."""
        ev_ = self.tsim.events()
        approved = [e["sessionId"] for e in ev_ if e["event"] in ("approved", "partiallyApproved")]
        counts = {s: len(self.settlements(s)) for s in approved}
        ev.append("terminal sessions: " + ", ".join(f"{s}:{'committed' if any(e['event']=='committed' for e in self.settlements(s)) else 'voided' if counts[s] else 'open'}x{counts[s]}" for s in approved))
        twice = [s for s, n in counts.items() if n > 1]
        open_ = [s for s, n in counts.items() if n == 0]
        if twice:
            raise Failed(f"settled more than once: {twice}")
        if len(open_) > 1 or (open_ and open_[0] != approved[-1]):
            raise Failed(f"approvals never settled: {open_}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb")
    ap.add_argument("--charger-sim", required=True)
    ap.add_argument("--terminal-sim", required=True)
    ap.add_argument("--gpio-probe")
    ap.add_argument("--meter-sim", help="meter-sim for the daemon's GPIO scenarios (G4-G6)")
    ap.add_argument("--only-gpio", action="store_true", help="boot and run only the GPIO scenarios (G4-G6 need --deb)")
    ap.add_argument("--rebuild-image", action="store_true")
    ap.add_argument("--image-only", action="store_true")
    args = ap.parse_args()

    t = time.monotonic()
    image = ensure_image(args.rebuild_image)
    t_image = time.monotonic() - t
    if args.image_only:
        return 0
    run_dir = os.path.join(BUILD, "run")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    if not args.deb and not args.only_gpio:
        ap.error("--deb is needed unless --only-gpio")
    payload = make_payload(run_dir, args.deb, args.charger_sim, args.gpio_probe, args.meter_sim)
    tsim = TerminalSim(args.terminal_sim, run_dir)
    m = None
    sc = None
    boot = None
    try:
        t = time.monotonic()
        m = Machine(image, payload, run_dir, tsim.port)
        try:
            m.agent.connect(timeout=180, alive=lambda: m.p.poll() is None)
        except Exception as e:
            print(f"\n=== FAIL: boot: {e}\n    last lines of {m.console}:")
            try:
                for line in open(m.console, errors="replace").read().splitlines()[-25:]:
                    print(f"    {line}")
            except OSError:
                pass
            m.stop()
            m = None
            return 1
        boot = time.monotonic() - t
        log(f"guest up, agent answering: {boot:.0f} s (console: {m.console})")
        log("guest: " + m.agent.out("uname -r; systemctl is-system-running; systemd-analyze time | head -1").replace("\n", ", "))
        sc = Scenarios(m, tsim, run_dir)
        rest = [("2 FTDI as /dev/ttyPSP, session across device_del/device_add settled once", sc.s2_usb),
                ("3 SIGSTOP: watchdog restarts, relay open while down, session settled once", sc.s3_watchdog),
                ("4 SIGHUP applies payment.preauth; stop leaves relay open and ledger clean", sc.s4_reload_stop),
                ("books: no terminal session settled twice, none left open", sc.final_books)]
        gpio = [("G0 gpio-sim loads; the chip and its named lines found by label", sc.g0_gpio_sim),
                ("G1 relay closes and opens, the mirror follows; plug debounced in and out", sc.g1_follow),
                ("G2 mirror stuck closed after open: welded, no close after; never closed: refused", sc.g2_welded_refused),
                ("G3 SIGKILL while closed releases the coil line de-energised (active high and low)", sc.g3_sigkill)]
        # The package's daemon on the gpio-sim lines; last, because it turns the installed daemon
        # from simulated charger I/O to charger.io = gpio for the rest of the boot.
        daemon_gpio = [("G4 daemon on GPIO: coil only after approval and plug, mirror follows, capture = tariff x meter", sc.g4_daemon_session),
                       ("G5 daemon SIGKILLed while charging: coil released, ExecStopPost de-energises, settled once", sc.g5_sigkill_daemon),
                       ("G6 welded contact: latched, survives restart, clear-fault refused until the mirror opens", sc.g6_welded_latch)]
        if args.only_gpio:
            rest = []
        if not (args.deb and args.meter_sim and args.gpio_probe):
            daemon_gpio = []
        gpio_ok = False
        if args.gpio_probe:
            gpio_ok = sc.run(*gpio[0])
            if gpio_ok:
                for name, fn in gpio[1:]:
                    sc.run(name, fn)
            else:
                for name, _ in gpio[1:]:
                    print(f"\n=== FAIL: {name}: not run (no gpio-sim chip)")
                    sc.results.append((name, False, 0.0))
        installed = (args.only_gpio and not args.deb) or sc.run("1 package installs under systemd: active, READY=1, STATUS, enabled", sc.s1_install)
        if not args.only_gpio:
            sc.run("1b systemd-analyze verify paybridged.service prints nothing", sc.s1_verify)
        if installed and args.deb and gpio_ok:
            rest += daemon_gpio
        else:
            for name, _ in daemon_gpio:
                print(f"\n=== FAIL: {name}: not run (the package is not running, or no gpio-sim chip)")
                sc.results.append((name, False, 0.0))
        if installed:
            for name, fn in rest:
                sc.run(name, fn)
        else:
            for name, _ in rest:
                print(f"\n=== FAIL: {name}: not run (the package is not installed and running)")
                sc.results.append((name, False, 0.0))
    finally:
        if m is not None and m.agent.s is not None:
            try:
                open(os.path.join(run_dir, "journal.txt"), "w").write(m.agent.out("journalctl -b --no-pager -o short-monotonic", timeout=60))
            except Exception as e:
                log(f"(no journal: {e})")
        if m is not None:
            m.stop()
        tsim.stop()
    total = time.monotonic() - T0
    print("\nsummary:")
    print(f"  image {'build' if t_image > 30 else 'cached'} {t_image:.0f} s, boot to agent {boot or 0:.0f} s, total {total:.0f} s")
    for name, ok, dt in (sc.results if sc else []):
        print(f"  {'PASS' if ok else 'FAIL'} {dt:5.0f} s  {name}")
    print(f"  files: {run_dir} (console.log, journal.txt, terminal-sim.record.jsonl, terminal-sim.log)")
    if not sc or not sc.results or not all(ok for _, ok, _ in sc.results) or len(sc.results) < (4 if args.only_gpio else 5):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
