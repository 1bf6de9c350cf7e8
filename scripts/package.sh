#!/usr/bin/env bash
# Builds what Hearth ships to desktops, on this Linux machine, each thing once and with the lean
# `release-ship` profile (Cargo.toml):
#
#   scripts/package.sh [deb] [windows]      (both when none is named)
#
#   deb      target/release-ship/bundle/deb/Hearth_<version>_amd64.deb, from the Tauri bundler
#            (`tauri build --bundles deb`; no AppImage: its tooling downloads at build time).
#   windows  target/x86_64-pc-windows-gnu/release-ship/hearth.exe, cross-compiled with MinGW-w64
#            (GUI subsystem, icon and version resources from tauri-build), staged with
#            WebView2Loader.dll in .../release-ship/installer/app/ and packed by Debian's
#            makensis with packaging/windows/hearth.nsi into
#            target/x86_64-pc-windows-gnu/release-ship/installer/Hearth_<version>_x64-setup.exe.
#            (Not Tauri's NSIS bundler: it downloads a plugin DLL at build time.)
#
# The UI is built once (vite) and embedded in both. Installs what is missing: the desktop
# build packages, mingw-w64 and nsis (Debian), the Rust Windows target (rustup), and the Tauri
# CLI (npm, from the lock file). Prints the artifacts' paths at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/deps.sh
source "$root/scripts/deps.sh"

want_deb=0
want_windows=0
if (($# == 0)); then
    want_deb=1
    want_windows=1
fi
for arg in "$@"; do
    case "$arg" in
        deb) want_deb=1 ;;
        windows) want_windows=1 ;;
        *) hearth_die "unknown package '$arg' (deb, windows)" ;;
    esac
done

profile=release-ship
windows_target=x86_64-pc-windows-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || hearth_die "no workspace version in Cargo.toml"

hearth_install_packages "${HEARTH_BUILD_PACKAGES[@]}" "${HEARTH_DESKTOP_PACKAGES[@]}"
if ((want_windows)); then
    hearth_install_packages "${HEARTH_WINDOWS_PACKAGES[@]}"
fi
hearth_ensure_cargo

if [[ ! -x node_modules/.bin/tauri || ! -d node_modules/vite ]]; then
    npm ci --no-audit --no-fund
fi

hearth_log "building the UI"
npm run build --workspace ui

artifacts=()

if ((want_deb)); then
    hearth_log "building the .deb (tauri build, profile $profile)"
    # The UI is built above; the bundler must not build it again.
    node_modules/.bin/tauri build --ci --bundles deb \
        --config '{"build":{"beforeBuildCommand":null}}' -- --profile "$profile"
    deb="$target_dir/$profile/bundle/deb/Hearth_${version}_amd64.deb"
    [[ -f $deb ]] || hearth_die "the bundler did not produce $deb"
    artifacts+=("$deb")
fi

if ((want_windows)); then
    if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$windows_target" ]]; then
        command -v rustup >/dev/null 2>&1 || hearth_die "the $windows_target standard library is missing and there is no rustup"
        rustup target add "$windows_target"
    fi
    hearth_log "building hearth.exe ($windows_target, profile $profile)"
    cargo build -p hearth-desktop --features custom-protocol --profile "$profile" --target "$windows_target"
    out="$target_dir/$windows_target/$profile"
    # webview2-com-sys's build script copies the loader it ships into its OUT_DIR.
    loader=$(find "$out/build" -path '*/webview2-com-sys-*/out/x64/WebView2Loader.dll' -printf '%T@ %p\n' |
        sort -n | tail -n 1 | cut -d' ' -f2-)
    [[ -n $loader ]] || hearth_die "WebView2Loader.dll not found under $out/build"
    stage="$out/installer/app"
    rm -rf "$stage"
    mkdir -p "$stage"
    cp "$out/hearth.exe" "$loader" "$stage/"
    setup="$out/installer/Hearth_${version}_x64-setup.exe"
    hearth_log "packing the installer (makensis)"
    makensis -V2 -NOCD -DVERSION="$version" -DAPPDIR="$stage" -DICON="$root/src-tauri/icons/icon.ico" \
        -DOUTFILE="$setup" packaging/windows/hearth.nsi
    artifacts+=("$setup")
fi

for artifact in "${artifacts[@]}"; do
    printf '%s\t%s\n' "$(du -h "$artifact" | cut -f1)" "$artifact"
done
