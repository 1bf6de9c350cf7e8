#!/usr/bin/env bash
# Two homes behind NAT routers and an "internet" between them, in Linux network namespaces,
# for the NAT test (crates/client/tests/nat.rs). Needs root, iproute2 and iptables.
#
#   scripts/netns.sh up ID          create the namespaces of run ID (letters and digits, <= 8)
#   scripts/netns.sh firewall ID    give the routers the usual home-router firewall: drop new
#                                   connections coming in on the WAN side to the router itself
#   scripts/netns.sh block-udp ID   drop UDP between the two routers (the homes can still reach
#                                   the server, so only a TURN relay joins them)
#   scripts/netns.sh unblock-udp ID
#   scripts/netns.sh down ID        delete everything of run ID (safe to repeat)
#   scripts/netns.sh names ID       print the namespace names, one per line
#
#   home-a 192.168.1.2 ── 192.168.1.1 rtr-a 100.64.1.2 ──┐
#                                   (MASQUERADE)           100.64.1.1
#                                                      inet 203.0.113.1 (the server)
#                                                          100.64.2.1
#   home-b 192.168.2.2 ── 192.168.2.1 rtr-b 100.64.2.2 ──┘
#                                   (MASQUERADE)
#
# The routers translate what leaves their WAN side (iptables MASQUERADE, so connection tracking
# lets only replies in) and know no route to the other home's private network; the internet
# namespace routes between the routers and holds the server's address. Namespace names are
# hearth-ID-NAME and interface names carry ID, so concurrent runs never collide.
#
# Why `firewall` matters for hole punching: without it, the first unsolicited packet from the
# other home, delivered to the router itself, leaves a conntrack entry for that address pair,
# so when the home behind it then sends to the other home, MASQUERADE must pick another source
# port: the mapping stops being endpoint-independent and neither side's packets ever match.
# Dropping such packets in INPUT means the entry is never confirmed, and the port is kept.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

(($# == 2)) || usage
cmd=$1
id=$2
[[ $id =~ ^[a-z0-9]{1,8}$ ]] || { echo "netns.sh: ID must be 1-8 lowercase letters or digits" >&2; exit 2; }

ns() { printf 'hearth-%s-%s' "$id" "$1"; }
inet=$(ns inet)
rtr_a=$(ns rtr-a)
rtr_b=$(ns rtr-b)
home_a=$(ns home-a)
home_b=$(ns home-b)
all=("$home_a" "$home_b" "$rtr_a" "$rtr_b" "$inet")

# Runs a command inside namespace $1.
in_ns() {
    local name=$1
    shift
    ip netns exec "$name" "$@"
}

# A veth pair with one end in each namespace: link NS_1 IF_1 ADDR_1 NS_2 IF_2 ADDR_2.
link() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$4" addr add "$6" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}

# A NAT router: forwards, masquerades what leaves its WAN interface, default route upstream.
router() {
    local name=$1 wan=$2 upstream=$3
    in_ns "$name" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$name" iptables -t nat -A POSTROUTING -o "$wan" -j MASQUERADE
    ip -n "$name" route add default via "$upstream"
}

down() {
    local name
    for name in "${all[@]}"; do
        if ip netns list | grep -qw "^$name"; then
            # Processes still inside keep a namespace alive; end them first.
            local pids
            pids=$(ip netns pids "$name" 2>/dev/null || true)
            if [[ -n $pids ]]; then
                # shellcheck disable=SC2086
                kill -9 $pids 2>/dev/null || true
            fi
            ip netns delete "$name"
        fi
    done
}

up() {
    command -v iptables >/dev/null || { echo "netns.sh: iptables not found" >&2; exit 1; }
    down
    local name
    for name in "${all[@]}"; do
        ip netns add "$name"
        ip -n "$name" link set lo up
    done
    # The internet: routes between the routers; the server's address on its loopback (the
    # `dummy` link type is not in every kernel).
    link "$inet" "h${id}ia" 100.64.1.1/24 "$rtr_a" "h${id}wa" 100.64.1.2/24
    link "$inet" "h${id}ib" 100.64.2.1/24 "$rtr_b" "h${id}wb" 100.64.2.2/24
    ip -n "$inet" addr add 203.0.113.1/32 dev lo
    in_ns "$inet" sysctl -qw net.ipv4.ip_forward=1
    # The homes.
    link "$rtr_a" "h${id}la" 192.168.1.1/24 "$home_a" "h${id}ha" 192.168.1.2/24
    link "$rtr_b" "h${id}lb" 192.168.2.1/24 "$home_b" "h${id}hb" 192.168.2.2/24
    ip -n "$home_a" route add default via 192.168.1.1
    ip -n "$home_b" route add default via 192.168.2.1
    router "$rtr_a" "h${id}wa" 100.64.1.1
    router "$rtr_b" "h${id}wb" 100.64.2.1
}

block_rule() {
    local op=$1
    in_ns "$inet" iptables "$op" FORWARD -p udp -s 100.64.1.2 -d 100.64.2.2 -j DROP
    in_ns "$inet" iptables "$op" FORWARD -p udp -s 100.64.2.2 -d 100.64.1.2 -j DROP
}

firewall() {
    in_ns "$rtr_a" iptables -A INPUT -i "h${id}wa" -m conntrack --ctstate NEW -j DROP
    in_ns "$rtr_b" iptables -A INPUT -i "h${id}wb" -m conntrack --ctstate NEW -j DROP
}

case $cmd in
up) up ;;
firewall) firewall ;;
down) down ;;
block-udp) block_rule -A ;;
unblock-udp) block_rule -D ;;
names) printf '%s\n' "${all[@]}" ;;
*) usage ;;
esac
