#!/usr/bin/env bash
# Rebuilds the fixture trees proc/, sys/ and rootfs/ that the host golden test
# reads, from the files of this machine that the deterministic node_exporter
# collectors read (kernel counters only: nothing personal or secret), then adds
# the few entries this machine lacks, marked "synthetic" below.
# Afterwards: go test ./exporters/host -run Golden -update, and review the diff.
#
# procs/ (the processes-per-user fixture) is written by hand and left alone.
set -euo pipefail
cd "$(dirname "$0")"

rm -rf proc sys rootfs

# copy <source> <destination>: cat, because /proc and /sys files report size 0.
copy() {
  mkdir -p "$(dirname "$2")"
  cat "$1" >"$2"
}

# proc/: cpu, stat, meminfo, loadavg, vmstat, filefd, pressure, diskstats,
# netdev (from /proc/net/dev), sockstat, netstat, conntrack.
for f in stat meminfo loadavg vmstat diskstats sys/fs/file-nr \
  net/dev net/sockstat net/sockstat6 net/netstat net/snmp net/snmp6 \
  net/softnet_stat net/udp net/udp6 sys/kernel/random/entropy_avail sys/kernel/random/poolsize; do
  copy "/proc/$f" "proc/$f"
done
for f in cpu io memory irq; do
  if [ -r "/proc/pressure/$f" ]; then copy "/proc/pressure/$f" "proc/pressure/$f"; fi
done
if [ -r /proc/sys/net/netfilter/nf_conntrack_count ]; then
  copy /proc/sys/net/netfilter/nf_conntrack_count proc/sys/net/netfilter/nf_conntrack_count
  copy /proc/sys/net/netfilter/nf_conntrack_max proc/sys/net/netfilter/nf_conntrack_max
  copy /proc/net/stat/nf_conntrack proc/net/stat/nf_conntrack
fi
# Synthetic: arp entries on two devices (documentation addresses), and one
# UDP socket with a receive queue, so arp and udp_queues have values.
cat >proc/net/arp <<'ARP'
IP address       HW type     Flags       HW address            Mask     Device
192.0.2.10       0x1         0x2         02:42:c0:00:02:0a     *        eth0
192.0.2.11       0x1         0x2         02:42:c0:00:02:0b     *        eth0
172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0
ARP
printf '   1: 0100007F:0035 00000000:0000 07 00000000:00000200 00:00000000 00000000   101        0 20001 2 0000000000000000 0\n' >>proc/net/udp
# The filesystem collector (checked for its series, not its values) gets a
# single mount, of the fixture's own root.
mkdir -p proc/1
echo '24 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw' >proc/1/mountinfo

# sys/: cpu (online, isolated, topology) and diskstats (rotational) and
# netclass (every readable attribute of each network device).
for f in isolated online possible present kernel_max; do
  copy "/sys/devices/system/cpu/$f" "sys/devices/system/cpu/$f"
done
for cpu in /sys/devices/system/cpu/cpu[0-9]*; do
  n=$(basename "$cpu")
  mkdir -p "sys/devices/system/cpu/$n"
  if [ -r "$cpu/online" ]; then copy "$cpu/online" "sys/devices/system/cpu/$n/online"; fi
  for f in core_id physical_package_id; do
    copy "$cpu/topology/$f" "sys/devices/system/cpu/$n/topology/$f"
  done
done
# Synthetic: thermal throttle counts, which VMs lack, for the first two CPUs
# (node_exporter reports a package's count from its first CPU only).
n=0
for cpu in cpu0 cpu1; do
  if [ -d "sys/devices/system/cpu/$cpu" ]; then
    mkdir -p "sys/devices/system/cpu/$cpu/thermal_throttle"
    echo $((5 + n)) >"sys/devices/system/cpu/$cpu/thermal_throttle/core_throttle_count"
    echo $((7 + n)) >"sys/devices/system/cpu/$cpu/thermal_throttle/package_throttle_count"
  fi
  n=$((n + 2))
done
# time: the clocksources, and a synthetic eleventh, since node_exporter
# numbers them in the order their names sort (clocksource10 before 2).
for cs in /sys/devices/system/clocksource/clocksource[0-9]*; do
  for f in available_clocksource current_clocksource; do
    copy "$cs/$f" "sys/devices/system/clocksource/$(basename "$cs")/$f"
  done
done
mkdir -p sys/devices/system/clocksource/clocksource10
echo "hpet acpi_pm " >sys/devices/system/clocksource/clocksource10/available_clocksource
echo "hpet" >sys/devices/system/clocksource/clocksource10/current_clocksource
for dev in $(awk '{print $3}' /proc/diskstats); do
  if [ -r "/sys/block/$dev/queue/rotational" ]; then
    copy "/sys/block/$dev/queue/rotational" "sys/block/$dev/queue/rotational"
  fi
done
for dev in /sys/class/net/*; do
  n=$(basename "$dev")
  mkdir -p "sys/class/net/$n"
  for f in "$dev"/*; do
    [ -f "$f" ] || continue
    # Attributes a virtual device does not support fail to read: skip them.
    cat "$f" >"sys/class/net/$n/$(basename "$f")" 2>/dev/null || rm -f "sys/class/net/$n/$(basename "$f")"
  done
done

# rootfs/: os.
copy /etc/os-release rootfs/etc/os-release

# Synthetic: the devices Docker makes for bench containers, so that the golden
# output shows they are skipped (counters copied from docker0, or zeros).
if ! grep -q 'veth' proc/net/dev; then
  docker0=$(grep 'docker0:' proc/net/dev | cut -d: -f2 || true)
  [ -n "$docker0" ] || docker0=' 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
  printf 'veth1a2b3c4:%s\nbr-0123456789ab:%s\n' "$docker0" "$docker0" >>proc/net/dev
fi
for n in veth1a2b3c4 br-0123456789ab; do
  mkdir -p "sys/class/net/$n"
  echo up >"sys/class/net/$n/operstate"
  echo 1500 >"sys/class/net/$n/mtu"
done

# Synthetic: a device with the values node_exporter's sysfs reader treats
# specially, so that the golden output (and TestNetClass_SameAsNodeExporter)
# shows this package's netclass reads them the same way: hex and octal
# numbers, a value that does not parse (0), one that overflows (0), padding,
# an alias longer than the 128 bytes read, administratively down (synth0);
# no flags, so an unknown admin state, and a negative value (synth1); and the
# bonding_masters file, which is not a device.
mkdir -p sys/class/net/synth0
(
  cd sys/class/net/synth0
  echo 0x1002 >flags
  echo '  9000  ' >mtu
  echo 010 >carrier_changes
  echo 0x10 >carrier_up_count
  echo none >carrier_down_count
  echo 99999999999999999999 >tx_queue_len
  echo 10000 >speed
  echo full >duplex
  echo down >operstate
  echo 0 >carrier
  echo 7 >ifindex
  echo 7 >iflink
  echo 1 >type
  echo 02:42:ac:11:00:02 >address
  echo ff:ff:ff:ff:ff:ff >broadcast
  printf 'a%.0s' $(seq 1 200) >ifalias
)
mkdir -p sys/class/net/synth1
(
  cd sys/class/net/synth1
  echo up >operstate
  echo -5 >dev_id
)
echo 'bond0' >sys/class/net/bonding_masters

# Synthetic: udev's database, which this machine (a container) lacks, for the
# first disk that diskstats reports, so that node_disk_info shows its labels.
read -r major minor dev < <(awk '$3 !~ /^(loop|zram|ram|fd)/ {print $1, $2, $3; exit}' /proc/diskstats)
mkdir -p rootfs/run/udev/data
cat >"rootfs/run/udev/data/b$major:$minor" <<EOF
S:disk/by-path/virtio-pci-0000:00:05.0
E:DEVNAME=/dev/$dev
E:DEVTYPE=disk
E:ID_PATH=virtio-pci-0000:00:05.0
E:ID_PART_TABLE_TYPE=gpt
E:ID_SERIAL=fixture-disk-0
EOF
echo "snapshot: done; now run go test ./exporters/host -run Golden -update"
