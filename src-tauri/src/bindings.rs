//! The TypeScript of everything the commands take and return and the events carry, beyond the
//! protocol's own types: generated from these Rust types into `ui/src/lib/backend/generated.ts`
//! (`cargo test -p hearth-desktop --lib bindings`), never written by hand. The test fails when
//! the committed file was stale, so CI catches a shell type changed without regenerating.

use hearth_protocol::typescript;

/// Protocol types the declarations below name; they come from the protocol's generated file.
const PROTOCOL_IMPORTS: &[&str] = &["ApiError", "ChannelId", "Invite", "Message", "User", "UserId"];

/// The file's text: a header, the imports, then one `export type` per type.
pub fn declarations() -> String {
    use crate::commands::admin::InviteView;
    use crate::commands::attachment::AttachmentProgress;
    use crate::commands::message::HistoryPage;
    use crate::directory::Account;
    use crate::error::CommandError;
    use crate::events::{OpenChannel, SendFailure};
    use crate::settings::{
        ChannelNotifications, Language, NotificationSettings, NotifyLevel, Settings, Theme,
    };
    use crate::shell::{Removal, SessionStatus};
    use crate::voice::call_state::{
        Connection, MicLevel, PeerQuality, SpeakingUpdate, VoiceCall, VoiceDeviceError,
    };
    use crate::voice::devices::{AudioDevice, AudioDevices};
    use crate::voice::settings::{InputMode, VoiceSettings};
    use hearth_client::transfer::{Direction, TransferInfo, TransferPath, TransferState};

    let cfg = typescript::config();
    let mut out = typescript::header("src-tauri", "cargo test -p hearth-desktop --lib bindings");
    out.push_str(&format!(
        "import type {{ {} }} from '../protocol/generated';\n\n",
        PROTOCOL_IMPORTS.join(", ")
    ));
    hearth_protocol::declare!(&mut out, &cfg;
        CommandError,
        Account,
        SessionStatus,
        Removal,
        HistoryPage,
        SendFailure,
        OpenChannel,
        Theme,
        Language,
        NotifyLevel,
        ChannelNotifications,
        NotificationSettings,
        Settings,
        Connection,
        VoiceCall,
        SpeakingUpdate,
        PeerQuality,
        AudioDevice,
        AudioDevices,
        InputMode,
        VoiceSettings,
        MicLevel,
        VoiceDeviceError,
        Direction,
        TransferState,
        TransferPath,
        TransferInfo,
        InviteView,
        AttachmentProgress,
    );
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn bindings_are_generated_and_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/backend/generated.ts");
        let fresh = super::declarations();
        hearth_protocol::typescript::check_generated(&path, &fresh);
        // Every imported protocol type is used (TypeScript would not say so: the imports are
        // type-only), and none is missing (tsc says so, in svelte-check).
        let body = fresh.split_once("from '../protocol/generated';").map_or("", |(_, body)| body);
        for name in super::PROTOCOL_IMPORTS {
            assert!(body.contains(name), "{name} is imported but no declaration uses it");
        }
    }
}
