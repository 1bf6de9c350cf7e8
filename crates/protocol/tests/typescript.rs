//! The UI's TypeScript types are generated from these Rust types, never written by hand:
//! this test writes `ui/src/lib/protocol/generated.ts` and fails if the committed file was
//! stale (so a protocol change without regenerating is caught by CI).

use hearth_protocol::api::*;
use hearth_protocol::gateway::{ClientMsg, Event, Ready, ServerMsg};
use hearth_protocol::model::*;
use hearth_protocol::typescript;
use hearth_protocol::{
    ApiError, AttachmentId, AuditEntryId, ChannelId, ErrorCode, MessageId, UploadId, UserId,
};

fn declarations() -> String {
    let cfg = typescript::config();
    let mut out = typescript::header("crates/protocol", "cargo test -p hearth-protocol --test typescript");
    hearth_protocol::declare!(&mut out, &cfg;
        UserId,
        ChannelId,
        MessageId,
        AuditEntryId,
        AttachmentId,
        UploadId,
        ErrorCode,
        ApiError,
        Role,
        Permission,
        User,
        ServerSettings,
        ChannelKind,
        Channel,
        Reaction,
        AttachmentKind,
        Attachment,
        Message,
        Status,
        Presence,
        ReadState,
        VoiceState,
        IceServer,
        Signal,
        TransferSignal,
        AuditEntry,
        AuditAction,
        AuditChange,
        Ban,
        ClientMsg,
        Ready,
        ServerMsg,
        Event,
        RegisterRequest,
        LoginRequest,
        RefreshRequest,
        LogoutRequest,
        Session,
        UpdateProfileRequest,
        ChangePasswordRequest,
        CreateInviteRequest,
        Invite,
        CreateChannelRequest,
        UpdateChannelRequest,
        SetChannelMembersRequest,
        ReorderChannelsRequest,
        UpdateMemberRequest,
        ModerationRequest,
        TransferOwnershipRequest,
        UpdateServerSettingsRequest,
        AuditLogQuery,
        SearchQuery,
        TextRange,
        SearchHit,
        SearchResults,
        CreateDmRequest,
        HistoryQuery,
        SendMessageRequest,
        CreateUploadRequest,
        UploadStatus,
        TurnCredentials,
        ServerInfo,
    );
    out.push_str(&format!(
        "export const PROTOCOL_VERSION = {};\nexport const MAX_FRAME_BYTES = {};\n\
         export const MAX_MESSAGE_CHARS = {};\nexport const MAX_GROUP_DM_MEMBERS = {};\n\
         export const MAX_TOPIC_CHARS = {};\nexport const MAX_REASON_CHARS = {};\n\
         export const MAX_DESCRIPTION_CHARS = {};\nexport const MAX_ATTACHMENTS_PER_MESSAGE = {};\n\
         export const MAX_ATTACHMENT_NAME_BYTES = {};\n",
        hearth_protocol::PROTOCOL_VERSION,
        hearth_protocol::MAX_FRAME_BYTES,
        hearth_protocol::MAX_MESSAGE_CHARS,
        hearth_protocol::MAX_GROUP_DM_MEMBERS,
        hearth_protocol::MAX_TOPIC_CHARS,
        hearth_protocol::MAX_REASON_CHARS,
        hearth_protocol::MAX_DESCRIPTION_CHARS,
        hearth_protocol::MAX_ATTACHMENTS_PER_MESSAGE,
        hearth_protocol::MAX_ATTACHMENT_NAME_BYTES,
    ));
    out
}

#[test]
fn typescript_declarations_are_up_to_date() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/protocol/generated.ts");
    typescript::check_generated(&path, &declarations());
}
