#!/bin/sh
# Runs the real `udevadm test` against a USB-serial tty in a fake sysfs, with the given rules
# files as the only rules, and prints what udev decided for it, one `KEY=value` a line:
#   DEVLINKS=/dev/ttyPSP …   GROUP=paybridge   MODE=0660   TAGS=:systemd:
# (empty values when a rule did not apply). Everything happens in a private mount namespace
# (unshare -m): tmpfs over /sys, /dev, /run/udev and the rules directories, and an /etc/group
# with a paybridge group, so the machine's own devices, links and rules are never touched.
#
# usage: udev-fake-device.sh VENDOR PRODUCT SERIAL KERNEL RULES_FILE...
#   VENDOR, PRODUCT: 4 hex digits (idVendor, idProduct); SERIAL: the USB serial number, or "-" for none;
#   KERNEL: ttyUSB0 (a usb-serial port) or ttyACM0 (a cdc_acm interface).
#   udev-fake-device.sh DRIVER DEVICE - gpiochip0 RULES_FILE...: a GPIO chip instead, whose parent
#   platform device DEVICE (udev's KERNELS) is bound to DRIVER (DRIVERS), e.g. gpio-sim gpio-sim.0.
# Exit status 77: cannot run here (not root, no unshare or udevadm); 2: usage.
set -eu
if [ "${PAYBRIDGE_UDEV_INNER:-}" != 1 ]; then
    [ $# -ge 5 ] || { echo "usage: $0 VENDOR PRODUCT SERIAL KERNEL RULES_FILE..." >&2; exit 2; }
    [ "$(id -u)" = 0 ] || { echo "SKIP: needs root for unshare -m" >&2; exit 77; }
    command -v unshare >/dev/null && command -v udevadm >/dev/null || { echo "SKIP: needs unshare and udevadm" >&2; exit 77; }
    unshare -m true 2>/dev/null || { echo "SKIP: this machine refuses a new mount namespace (unshare -m)" >&2; exit 77; }
    # The rules files by absolute path: the namespace's script may run from anywhere.
    i=0
    for a in "$@"; do
        shift; i=$((i + 1))
        if [ $i -gt 4 ]; then a=$(realpath "$a"); fi
        set -- "$@" "$a"
    done
    PAYBRIDGE_UDEV_INNER=1 exec unshare -m --propagation private "$0" "$@"
fi

vendor=$1 product=$2 serial=$3 kernel=$4
shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The rules files, copied before /etc is covered.
mkdir "$work/rules"
# An example file is installed without its .example suffix (udev reads only *.rules).
for f in "$@"; do b=$(basename "$f"); cp "$f" "$work/rules/${b%.example}"; done
cp /etc/group "$work/group"
grep -q '^paybridge:' "$work/group" || echo 'paybridge:x:987:' >> "$work/group"

mount -t tmpfs tmpfs /sys
mount -t tmpfs tmpfs /dev
mkdir -p /run/udev && mount -t tmpfs tmpfs /run/udev
mount -t tmpfs tmpfs /usr/lib/udev/rules.d
mkdir -p /etc/udev/rules.d && mount -t tmpfs tmpfs /etc/udev/rules.d
[ -d /lib/udev/rules.d ] && [ ! -L /lib ] && mount -t tmpfs tmpfs /lib/udev/rules.d
cp "$work"/rules/* /etc/udev/rules.d/
mount --bind "$work/group" /etc/group

mkdir -p /sys/bus/usb /sys/bus/usb-serial /sys/class/tty /sys/bus/usb/drivers/cdc_acm /sys/bus/usb-serial/drivers/ftdi_sio
case $kernel in
gpiochip*)
    # A GPIO chip on the gpio bus, child of a platform device bound to a driver.
    mkdir -p /sys/bus/gpio "/sys/bus/platform/drivers/$vendor"
    parent=/sys/devices/platform/$product
    chip=$parent/$kernel
    mkdir -p "$chip"
    printf 'DRIVER=%s\n' "$vendor" > "$parent/uevent"
    ln -s ../../bus/platform "$parent/subsystem"
    ln -s "../../bus/platform/drivers/$vendor" "$parent/driver"
    ln -s ../../../bus/gpio "$chip/subsystem"
    printf 'MAJOR=254\nMINOR=0\nDEVNAME=%s\n' "$kernel" > "$chip/uevent"
    echo 254:0 > "$chip/dev"
    mknod -m 0600 "/dev/$kernel" c 254 0
    tty=$chip
    ;;
*)
usbdev=/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1
intf=$usbdev/1-1:1.0
mkdir -p "$intf"
printf 'DEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=%s/%s/600\nTYPE=0/0/0\nBUSNUM=001\nDEVNUM=002\n' "${vendor#0}" "${product#0}" > "$usbdev/uevent"
echo "$vendor" > "$usbdev/idVendor"
echo "$product" > "$usbdev/idProduct"
echo 0600 > "$usbdev/bcdDevice"
echo "Test Vendor" > "$usbdev/manufacturer"
echo "Test Adapter" > "$usbdev/product"
[ "$serial" = - ] || echo "$serial" > "$usbdev/serial"
echo 1 > "$usbdev/busnum"; echo 2 > "$usbdev/devnum"
ln -s ../../../../../bus/usb "$usbdev/subsystem"
echo 00 > "$intf/bInterfaceNumber"
case $kernel in
ttyUSB*)
    printf 'DEVTYPE=usb_interface\nDRIVER=ftdi_sio\nINTERFACE=255/255/255\n' > "$intf/uevent"
    echo ff > "$intf/bInterfaceClass"; echo ff > "$intf/bInterfaceSubClass"; echo ff > "$intf/bInterfaceProtocol"
    ln -s ../../../../../../bus/usb "$intf/subsystem"
    port=$intf/$kernel
    mkdir -p "$port/tty/$kernel"
    printf 'DRIVER=ftdi_sio\n' > "$port/uevent"
    echo 0 > "$port/port_number"
    ln -s ../../../../../../../bus/usb-serial "$port/subsystem"
    ln -s ../../../../../../../bus/usb-serial/drivers/ftdi_sio "$port/driver"
    tty=$port/tty/$kernel
    ln -s ../../../../../../../../../class/tty "$tty/subsystem"
    major=188
    ;;
ttyACM*)
    printf 'DEVTYPE=usb_interface\nDRIVER=cdc_acm\nINTERFACE=2/2/1\n' > "$intf/uevent"
    echo 02 > "$intf/bInterfaceClass"; echo 02 > "$intf/bInterfaceSubClass"; echo 01 > "$intf/bInterfaceProtocol"
    ln -s ../../../../../../bus/usb "$intf/subsystem"
    ln -s ../../../../../../bus/usb/drivers/cdc_acm "$intf/driver"
    mkdir -p "$intf/tty/$kernel"
    tty=$intf/tty/$kernel
    ln -s ../../../../../../../../class/tty "$tty/subsystem"
    major=166
    ;;
*) echo "unknown kernel name $kernel" >&2; exit 2 ;;
esac
printf 'MAJOR=%s\nMINOR=0\nDEVNAME=%s\n' "$major" "$kernel" > "$tty/uevent"
echo "$major:0" > "$tty/dev"
ln -s "../../${tty#/sys/}" "/sys/class/tty/$kernel"
# udev skips a device whose node is missing: the kernel's devtmpfs would have made it.
mknod -m 0600 "/dev/$kernel" c "$major" 0
    ;;
esac

# sd-device refuses a syspath on anything but sysfs unless told (what umockdev relies on too).
out=$(SYSTEMD_DEVICE_VERIFY_SYSFS=0 udevadm test --action=add "$tty" 2>&1) || { echo "$out" >&2; echo "udevadm test failed" >&2; exit 1; }
# udevadm test exits 0 whatever it thinks of the rules: a broken rule must fail here.
# (Parse problems are logged with the file's path first; problems applying a rule name its line.)
if printf '%s\n' "$out" | grep -E '^/etc/udev/rules.d/|\.rules:[0-9]+:? .*(Failed|ignoring|Invalid|Unknown)' >&2; then
    echo "udevadm complained about the rules (above)" >&2
    exit 1
fi
printf '%s\n' "$out" > "$work/out"
[ -z "${PAYBRIDGE_UDEV_DEBUG:-}" ] || cat "$work/out" >&2
devlinks=$(sed -n 's/^DEVLINKS=//p' "$work/out" | tail -n 1)
tags=$(sed -n 's/^TAGS=//p' "$work/out" | tail -n 1)
group="" mode=""
# udevadm test prints the node's ownership as it applies it; stat the node it made as well.
if [ -e "/dev/$kernel" ]; then
    group=$(stat -c %G "/dev/$kernel" 2>/dev/null || true)
    mode=$(stat -c %a "/dev/$kernel" 2>/dev/null || true)
fi
echo "DEVLINKS=$devlinks"
echo "TAGS=$tags"
echo "NODE_GROUP=$group"
echo "NODE_MODE=$mode"
printf '%s\n' "$out" | sed -n 's/.*Setting permissions \(.*\)$/PERMISSIONS=\1/p' | tail -n 1
