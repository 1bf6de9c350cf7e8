//! `account_*` and `server_info`: saved logins, login and register, switching and logout.

use hearth_protocol::api::{LoginRequest, RegisterRequest, ServerInfo};
use tauri::{AppHandle, Manager, State};

use crate::directory::Account;
use crate::error::{CommandError, CommandResult};
use crate::events::{self, STATUS};
use crate::shell::{SessionStatus, Shell};
use crate::tray;
use crate::voice::VoiceLine;

#[tauri::command]
pub fn account_list(shell: State<'_, Shell>) -> Vec<Account> {
    let infos = shell.engine.accounts();
    let directory = shell.directory();
    // The active account first: it is the one used most recently.
    let (active, rest): (Vec<_>, Vec<_>) = infos.iter().partition(|a| a.active);
    active.into_iter().chain(rest).map(|a| directory.account(a)).collect()
}

#[tauri::command]
pub fn account_active(shell: State<'_, Shell>) -> Option<Account> {
    shell.engine.active_account().map(|a| shell.directory().account(&a))
}

#[tauri::command]
pub async fn server_info(shell: State<'_, Shell>, server_url: String) -> CommandResult<ServerInfo> {
    Ok(shell.engine.server_info(&server_url).await?)
}

#[tauri::command]
pub async fn account_register(
    app: AppHandle,
    shell: State<'_, Shell>,
    server_url: String,
    request: RegisterRequest,
) -> CommandResult<Account> {
    let server = shell.engine.server_info(&server_url).await?;
    let info =
        shell.engine.register(&server_url, &request.invite, &request.username, &request.password).await?;
    shell.directory().set_server_name(&info.id, &server.name);
    start_session(&app, &shell, &info.id).await?;
    if let Some(name) = request.display_name.filter(|n| !n.trim().is_empty()) {
        // The account exists either way; a refused display name is only logged.
        match shell.engine.update_profile(Some(name)).await {
            Ok(user) => shell.directory().set_user(&info.id, &user),
            Err(e) => tracing::warn!("display name not set after register: {}", e.code()),
        }
    }
    Ok(shell.directory().account(&info))
}

#[tauri::command]
pub async fn account_login(
    app: AppHandle,
    shell: State<'_, Shell>,
    server_url: String,
    request: LoginRequest,
) -> CommandResult<Account> {
    let server = shell.engine.server_info(&server_url).await?;
    let info = shell.engine.login(&server_url, &request.username, &request.password).await?;
    shell.directory().set_server_name(&info.id, &server.name);
    start_session(&app, &shell, &info.id).await?;
    Ok(shell.directory().account(&info))
}

#[tauri::command]
pub async fn account_logout(
    app: AppHandle,
    shell: State<'_, Shell>,
    account_id: String,
) -> CommandResult<()> {
    let was_active =
        shell.engine.active_account().is_some_and(|a| a.id == account_id) && shell.engine.session().is_ok();
    if was_active {
        // The call belongs to the session that is about to end.
        app.state::<VoiceLine>().leave(&app).await;
        // Revokes the login on the server, stops the session and forgets the account.
        shell.engine.logout(false).await?;
        stop_session(&app, &shell);
    } else {
        if !shell.engine.accounts().iter().any(|a| a.id == account_id) {
            return Err(CommandError::new("not_found", "This account is not saved on this computer."));
        }
        shell.engine.remove_account(&account_id).await?;
    }
    shell.directory().forget(&account_id);
    Ok(())
}

#[tauri::command]
pub async fn account_switch(
    app: AppHandle,
    shell: State<'_, Shell>,
    account_id: String,
) -> CommandResult<()> {
    start_session(&app, &shell, &account_id).await
}

/// Makes `account_id` the running account and forwards its session's events. The previous
/// snapshot is dropped first: the UI must not see one account's channels under another.
pub async fn start_session(app: &AppHandle, shell: &Shell, account_id: &str) -> CommandResult<()> {
    // A call belongs to the account that joined it.
    app.state::<VoiceLine>().leave(app).await;
    shell.set_forwarder(None);
    shell.set_snapshot(None);
    let (session, events) = shell.engine.activate_subscribed(account_id).await?;
    events::forward(app, session, events);
    tray::refresh(app);
    Ok(())
}

fn stop_session(app: &AppHandle, shell: &Shell) {
    shell.set_forwarder(None);
    shell.set_snapshot(None);
    events::emit(app, STATUS, SessionStatus::offline());
    tray::refresh(app);
}
