; The Hearth installer for Windows, built on Linux with Debian's makensis (3.08):
;
;   makensis -DVERSION=0.1.0 -DAPPDIR=dir/with/hearth.exe -DICON=src-tauri/icons/icon.ico \
;            -DOUTFILE=Hearth_0.1.0_x64-setup.exe packaging/windows/hearth.nsi
;
; (scripts/package-windows.sh does the build and this call.) APPDIR holds hearth.exe and
; WebView2Loader.dll, both copied beside each other into the install directory.
;
; Like Discord, it installs for the current user only, without administrator rights: the
; program under %LOCALAPPDATA%\Hearth (where Tauri's own installer, built by the release
; workflow, puts it too), every registry entry under HKCU (the uninstaller in Apps & features,
; the hearth:// link scheme). The user's data (accounts, cache, settings)
; lives apart, in %APPDATA%\org.hearth.desktop and %LOCALAPPDATA%\org.hearth.desktop: an
; upgrade installs over the program files and never touches it, and the uninstaller leaves it
; too, so that reinstalling finds everything where it was.
;
; /S installs (and, on uninstall.exe, uninstalls) silently. The Tauri updater's NSIS flags
; (/P, /R, /UPDATE) are for Tauri's own installer, which the release workflow builds on Windows.

Unicode true
Target amd64-unicode
ManifestDPIAware true
RequestExecutionLevel user
SetCompressor /SOLID lzma

!ifndef VERSION
  !error "pass -DVERSION=x.y.z"
!endif
!ifndef APPDIR
  !error "pass -DAPPDIR=<directory with hearth.exe and WebView2Loader.dll>"
!endif
!ifndef ICON
  !error "pass -DICON=<path to icon.ico>"
!endif
!ifndef OUTFILE
  !define OUTFILE "Hearth_${VERSION}_x64-setup.exe"
!endif

!define PRODUCT "Hearth"
!define PUBLISHER "Hearth"
!define EXE "hearth.exe"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Hearth"
!define SCHEME_KEY "Software\Classes\hearth"
; tauri-plugin-autostart's value when "start with Windows" is on.
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
; The WebView2 Runtime's client id, the same for every channel of the Evergreen runtime.
!define WEBVIEW2_CLIENT "Software\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define WEBVIEW2_CLIENT_WOW "Software\WOW6432Node\Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define WEBVIEW2_DOWNLOAD "https://developer.microsoft.com/microsoft-edge/webview2/"

Name "${PRODUCT}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Hearth"
; An upgrade goes where the last install went.
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "${PRODUCT} ${VERSION}"

VIProductVersion "${VERSION}.0"
VIAddVersionKey /LANG=0 "ProductName" "${PRODUCT}"
VIAddVersionKey /LANG=0 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=0 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=0 "FileDescription" "${PRODUCT} installer"
VIAddVersionKey /LANG=0 "CompanyName" "${PUBLISHER}"
VIAddVersionKey /LANG=0 "LegalCopyright" "AGPL-3.0-or-later"

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"

!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES

; The installer speaks the app's languages; Windows' display language picks one.
!insertmacro MUI_LANGUAGE "English"
!insertmacro MUI_LANGUAGE "TradChinese"
!insertmacro MUI_LANGUAGE "French"

LangString WebView2Missing ${LANG_ENGLISH} "Hearth needs the Microsoft Edge WebView2 Runtime to show its window, and it is not installed on this computer.$\r$\n$\r$\nHearth will be installed now; it starts once WebView2 is installed.$\r$\n$\r$\nOpen Microsoft's WebView2 download page?"
LangString WebView2Missing ${LANG_TRADCHINESE} "Hearth 需要 Microsoft Edge WebView2 Runtime 才能顯示視窗，但這台電腦尚未安裝。$\r$\n$\r$\nHearth 現在會先安裝；安裝 WebView2 之後即可啟動。$\r$\n$\r$\n要開啟 Microsoft 的 WebView2 下載頁面嗎？"
LangString WebView2Missing ${LANG_FRENCH} "Hearth a besoin du runtime Microsoft Edge WebView2 pour afficher sa fenêtre, et il n'est pas installé sur cet ordinateur.$\r$\n$\r$\nHearth va être installé maintenant ; il démarrera une fois WebView2 installé.$\r$\n$\r$\nOuvrir la page de téléchargement de WebView2 de Microsoft ?"
LangString LinkProtocol ${LANG_ENGLISH} "URL:Hearth invite link"
LangString LinkProtocol ${LANG_TRADCHINESE} "URL:Hearth 邀請連結"
LangString LinkProtocol ${LANG_FRENCH} "URL:Lien d'invitation Hearth"

; Sets $0 to the WebView2 Runtime's version, or "" when it is not installed (a version of
; 0.0.0.0 is what an uninstalled runtime leaves behind).
!macro WebView2Version
  ReadRegStr $0 HKLM "${WEBVIEW2_CLIENT_WOW}" "pv"
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKLM "${WEBVIEW2_CLIENT}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKCU "${WEBVIEW2_CLIENT}" "pv"
  ${EndIf}
  ${If} $0 == "0.0.0.0"
    StrCpy $0 ""
  ${EndIf}
!macroend

Section "Hearth" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; Over an older version these replace the program's files; the user's data is elsewhere.
  File "${APPDIR}\${EXE}"
  File "${APPDIR}\WebView2Loader.dll"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\${PRODUCT}.lnk" "$INSTDIR\${EXE}"
  CreateShortcut "$DESKTOP\${PRODUCT}.lnk" "$INSTDIR\${EXE}"

  ; Apps & features.
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$\"$INSTDIR\${EXE}$\",0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" "$\"$INSTDIR\uninstall.exe$\""
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" "$\"$INSTDIR\uninstall.exe$\" /S"
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"

  ; hearth:// links (invites) open the installed app; a running app receives them through its
  ; single-instance hand-over.
  WriteRegStr HKCU "${SCHEME_KEY}" "" "$(LinkProtocol)"
  WriteRegStr HKCU "${SCHEME_KEY}" "URL Protocol" ""
  WriteRegStr HKCU "${SCHEME_KEY}\DefaultIcon" "" "$\"$INSTDIR\${EXE}$\",0"
  WriteRegStr HKCU "${SCHEME_KEY}\shell\open\command" "" "$\"$INSTDIR\${EXE}$\" $\"%1$\""

  ; Without WebView2 the app cannot open its window: say so plainly and offer the download.
  ; Silent installs (/S) carry on without asking.
  !insertmacro WebView2Version
  ${If} $0 == ""
    MessageBox MB_YESNO|MB_ICONEXCLAMATION "$(WebView2Missing)" /SD IDNO IDNO webview2_done
    ExecShell "open" "${WEBVIEW2_DOWNLOAD}"
    webview2_done:
  ${EndIf}
SectionEnd

Section "Uninstall"
  Delete "$INSTDIR\${EXE}"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"

  Delete "$SMPROGRAMS\${PRODUCT}.lnk"
  Delete "$DESKTOP\${PRODUCT}.lnk"

  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  ; The scheme only if it is still ours (another install may have taken it since).
  ReadRegStr $0 HKCU "${SCHEME_KEY}\shell\open\command" ""
  ${If} $0 == "$\"$INSTDIR\${EXE}$\" $\"%1$\""
    DeleteRegKey HKCU "${SCHEME_KEY}"
  ${EndIf}
  DeleteRegValue HKCU "${RUN_KEY}" "${PRODUCT}"
SectionEnd
