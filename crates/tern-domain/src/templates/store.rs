//! Templates stored per workspace, versioned.
//!
//! Every save (create or update) validates and compiles the template and, when it is sound, writes a new
//! immutable version item and moves the current item to it, in one transaction. A message queued with a
//! version therefore renders the same however the template changes later. Deleting is soft: the current
//! item is marked deleted (it disappears from reads and lists) and the versions stay, so messages already
//! queued still render; creating the same id again continues its version numbers. The items are described
//! in [`crate::layout`].

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tern_ports::table::VERSION;
use tern_ports::{Condition, Item, PortError, Query, Table, TransactOp};

use super::compile::CompiledTemplate;
use super::model::{TemplateDefinition, TemplateError};
use crate::stored::{corrupt, optional_time, required_s, required_time};
use crate::{DomainError, DomainResult, layout};

/// The longest template id.
pub const MAX_ID_LENGTH: usize = 64;
/// The longest template name.
pub const MAX_NAME_LENGTH: usize = 200;
/// How many template items one list query reads at a time.
const LIST_READ_SIZE: u32 = 200;

mod attr {
    pub const ENTITY: &str = "entity";
    pub const ID: &str = "template_id";
    pub const NAME: &str = "name";
    pub const CHANNEL: &str = "channel";
    /// The definition's JSON text.
    pub const DEFINITION: &str = "definition";
    pub const CREATED_AT: &str = "created_at";
    pub const SAVED_AT: &str = "saved_at";
    pub const DELETED_AT: &str = "deleted_at";
}

const ENTITY_CURRENT: &str = "template";
const ENTITY_VERSION: &str = "template_version";

/// One version of a template as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTemplate {
    pub id: String,
    pub name: String,
    /// 1 for the first save, one more for each save after it.
    pub version: i64,
    /// The template when first created.
    pub created_at: Timestamp,
    /// When this version was saved.
    pub saved_at: Timestamp,
    pub template: TemplateDefinition,
}

impl StoredTemplate {
    /// `"email"` or `"webhook"`.
    pub fn channel(&self) -> &'static str {
        channel_of(&self.template)
    }

    /// The compiled form, for rendering. A stored template compiled when it was saved; failing now means
    /// the compiler changed, reported as corrupt data naming the template.
    pub fn compile(&self) -> DomainResult<CompiledTemplate> {
        self.template.compile().map_err(|errors| {
            let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
            DomainError::Corrupt(format!(
                "template {:?} version {} no longer compiles: {}",
                self.id,
                self.version,
                reasons.join("; ")
            ))
        })
    }
}

/// A template in a list: its current version, without the definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSummary {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub version: i64,
    pub created_at: Timestamp,
    pub saved_at: Timestamp,
}

/// What a save is given: the template's name and definition, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateInput {
    pub name: String,
    pub template: TemplateDefinition,
}

/// Why a save was refused: the template's problems (each with its field, and line and column within a
/// Liquid or MJML field), or a storage or lookup failure.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("the template has {} problem(s)", .0.len())]
    Template(Vec<TemplateError>),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<PortError> for SaveError {
    fn from(error: PortError) -> Self {
        SaveError::Domain(error.into())
    }
}

impl TemplateInput {
    /// Reads `{"name": "…", "template": {…}}` and compiles the template, reporting every problem at once;
    /// the template's fields are reported under `template.` (`template.body.mjml`).
    pub fn from_json(json: &Value) -> Result<Self, Vec<TemplateError>> {
        let Some(object) = json.as_object() else {
            return Err(vec![TemplateError::new(
                "",
                "the body must be a JSON object",
            )]);
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if !["id", "name", "template"].contains(&key.as_str()) {
                errors.push(TemplateError::new(
                    key.as_str(),
                    "is not a field; the fields are id, name and template",
                ));
            }
        }
        let name = checked_name(object, &mut errors);
        let template = match object.get("template") {
            None => {
                errors.push(TemplateError::new("template", "is required"));
                None
            }
            Some(template) => checked_template(template, &mut errors),
        };
        match (name, template) {
            (Some(name), Some(template)) if errors.is_empty() => Ok(Self { name, template }),
            _ => Err(errors),
        }
    }
}

fn checked_name(object: &Map<String, Value>, errors: &mut Vec<TemplateError>) -> Option<String> {
    let problem = match object.get("name") {
        None => "is required",
        Some(Value::String(name)) if name.trim().is_empty() => "must not be empty",
        Some(Value::String(name)) if name.chars().count() > MAX_NAME_LENGTH => {
            "is longer than 200 characters"
        }
        Some(Value::String(name)) => return Some(name.clone()),
        Some(_) => "must be a string",
    };
    errors.push(TemplateError::new("name", problem));
    None
}

/// Validates and compiles the template, prefixing the paths of its problems with `template`.
fn checked_template(json: &Value, errors: &mut Vec<TemplateError>) -> Option<TemplateDefinition> {
    let under_template = |error: TemplateError| TemplateError {
        path: if error.path.is_empty() {
            "template".to_string()
        } else {
            format!("template.{}", error.path)
        },
        ..error
    };
    let result = TemplateDefinition::from_json(json)
        .and_then(|definition| definition.compile().map(|_| definition));
    match result {
        Ok(definition) => Some(definition),
        Err(problems) => {
            errors.extend(problems.into_iter().map(under_template));
            None
        }
    }
}

/// Checks a template id from outside: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_id(field: &str, id: &str) -> DomainResult<()> {
    if id.is_empty() || id.chars().count() > MAX_ID_LENGTH {
        return Err(DomainError::invalid(
            field,
            format!("an id has 1 to {MAX_ID_LENGTH} characters"),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(DomainError::invalid(
            field,
            format!("an id holds only letters, digits, '-', '_' and '.', not {bad:?}"),
        ));
    }
    Ok(())
}

fn channel_of(template: &TemplateDefinition) -> &'static str {
    match template {
        TemplateDefinition::Email(_) => "email",
        TemplateDefinition::Webhook(_) => "webhook",
    }
}

/// Creates template `id` (version 1, or the next version when a template of that id was deleted).
/// `DomainError::Conflict` when a template `id` exists.
pub async fn create_template(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    input: TemplateInput,
    now: Timestamp,
) -> Result<StoredTemplate, SaveError> {
    check_id("id", id)?;
    let current = table.get(&layout::template_key(workspace_id, id)).await?;
    let previous = match &current {
        Some(item) if item.get(attr::DELETED_AT).is_none() => {
            return Err(DomainError::Conflict(format!("a template {id:?} already exists")).into());
        }
        Some(item) => stored_version_number(item)?,
        None => 0,
    };
    let template = StoredTemplate {
        id: id.to_string(),
        name: input.name,
        version: previous + 1,
        created_at: now,
        saved_at: now,
        template: input.template,
    };
    write_version(table, workspace_id, &template, previous).await?;
    Ok(template)
}

/// Saves a new version of template `id`; `DomainError::NotFound` when there is none.
pub async fn update_template(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    input: TemplateInput,
    now: Timestamp,
) -> Result<StoredTemplate, SaveError> {
    let current = get_template(table, workspace_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let template = StoredTemplate {
        id: id.to_string(),
        name: input.name,
        version: current.version + 1,
        created_at: current.created_at,
        saved_at: now,
        template: input.template,
    };
    write_version(table, workspace_id, &template, current.version).await?;
    Ok(template)
}

fn not_found(id: &str) -> DomainError {
    DomainError::NotFound(format!("template {id:?}"))
}

/// Writes the version item and moves the current item to it, both or neither. The current item's
/// `version` must still be `previous`: of two concurrent saves, one wins and the other is a conflict.
async fn write_version(
    table: &dyn Table,
    workspace_id: &str,
    template: &StoredTemplate,
    previous: i64,
) -> DomainResult<()> {
    let definition = serde_json::to_string(&template.template)
        .map_err(|error| DomainError::Corrupt(format!("a template does not serialize: {error}")))?;
    let fields = |item: Item| {
        item.with(attr::ID, template.id.as_str())
            .with(attr::NAME, template.name.as_str())
            .with(attr::CHANNEL, template.channel())
            .with(VERSION, template.version)
            .with(attr::DEFINITION, definition.as_str())
            .with(attr::CREATED_AT, template.created_at.to_string())
            .with(attr::SAVED_AT, template.saved_at.to_string())
    };
    let version_key = layout::template_version_key(workspace_id, &template.id, template.version);
    let current_key = layout::template_key(workspace_id, &template.id);
    let ops = vec![
        TransactOp::Put {
            item: fields(Item::new(&version_key)).with(attr::ENTITY, ENTITY_VERSION),
            condition: Some(Condition::NotExists),
        },
        TransactOp::Put {
            item: fields(Item::new(&current_key)).with(attr::ENTITY, ENTITY_CURRENT),
            condition: Some(Condition::VersionMatches(previous)),
        },
    ];
    match table.transact_write(ops).await {
        Err(PortError::TransactionCanceled { .. } | PortError::ConditionFailed) => {
            Err(DomainError::Conflict(format!(
                "template {:?} was saved by another request meanwhile; reload it and save again",
                template.id
            )))
        }
        other => Ok(other?),
    }
}

/// The current version of template `id`, unless there is none or it was deleted.
pub async fn get_template(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
) -> DomainResult<Option<StoredTemplate>> {
    let Some(item) = table.get(&layout::template_key(workspace_id, id)).await? else {
        return Ok(None);
    };
    if item.get(attr::DELETED_AT).is_some() {
        return Ok(None);
    }
    template_from_item(&item).map(Some)
}

/// Version `version` of template `id`; versions stay readable after the template is deleted, as queued
/// messages may still name them.
pub async fn get_template_version(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    version: i64,
) -> DomainResult<Option<StoredTemplate>> {
    let key = layout::template_version_key(workspace_id, id, version);
    table
        .get(&key)
        .await?
        .map(|item| template_from_item(&item))
        .transpose()
}

/// Every template of the workspace that is not deleted, by id.
pub async fn list_templates(
    table: &dyn Table,
    workspace_id: &str,
) -> DomainResult<Vec<TemplateSummary>> {
    let mut summaries = Vec::new();
    let mut cursor = None;
    loop {
        let query = Query::new(layout::workspace_pk(workspace_id))
            .prefix(layout::TEMPLATE_SK_PREFIX)
            .limit(LIST_READ_SIZE)
            .after(cursor);
        let page = table.query(query).await?;
        for item in &page.items {
            if item.get_s(attr::ENTITY) == Some(ENTITY_CURRENT)
                && item.get(attr::DELETED_AT).is_none()
            {
                summaries.push(summary_from_item(item)?);
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(summaries),
        }
    }
}

/// Deletes template `id` (softly, see the module); `DomainError::NotFound` when there is none.
pub async fn delete_template(
    table: &dyn Table,
    workspace_id: &str,
    id: &str,
    now: Timestamp,
) -> DomainResult<()> {
    let current = get_template(table, workspace_id, id)
        .await?
        .ok_or_else(|| not_found(id))?;
    let update = tern_ports::Update::new().set(attr::DELETED_AT, now.to_string());
    let condition = Condition::VersionMatches(current.version);
    match table
        .update(
            &layout::template_key(workspace_id, id),
            update,
            Some(condition),
        )
        .await
    {
        Err(PortError::ConditionFailed) => Err(DomainError::Conflict(format!(
            "template {id:?} was saved by another request meanwhile; try again"
        ))),
        other => other.map(|_| ()).map_err(Into::into),
    }
}

fn stored_version_number(item: &Item) -> DomainResult<i64> {
    item.get_i64(VERSION)
        .ok_or_else(|| corrupt(item, "lacks the number attribute \"version\""))
}

fn template_from_item(item: &Item) -> DomainResult<StoredTemplate> {
    let definition = required_s(item, attr::DEFINITION)?;
    let template = serde_json::from_str(definition)
        .map_err(|error| corrupt(item, &format!("has an unreadable definition: {error}")))?;
    Ok(StoredTemplate {
        id: required_s(item, attr::ID)?.to_string(),
        name: required_s(item, attr::NAME)?.to_string(),
        version: stored_version_number(item)?,
        created_at: required_time(item, attr::CREATED_AT)?,
        saved_at: required_time(item, attr::SAVED_AT)?,
        template,
    })
}

fn summary_from_item(item: &Item) -> DomainResult<TemplateSummary> {
    Ok(TemplateSummary {
        id: required_s(item, attr::ID)?.to_string(),
        name: required_s(item, attr::NAME)?.to_string(),
        channel: required_s(item, attr::CHANNEL)?.to_string(),
        version: stored_version_number(item)?,
        created_at: required_time(item, attr::CREATED_AT)?,
        saved_at: optional_time(item, attr::SAVED_AT)?
            .ok_or_else(|| corrupt(item, "lacks the string attribute \"saved_at\""))?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use tern_embedded::Db;
    use tern_embedded::table::SqliteTable;

    use super::*;

    fn table() -> Arc<dyn Table> {
        Arc::new(SqliteTable::new(Db::in_memory().unwrap()).unwrap())
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn input(subject: &str) -> TemplateInput {
        TemplateInput::from_json(&json!({
            "name": "Welcome",
            "template": {
                "channel": "email",
                "from": "news@example.com",
                "subject": subject,
                "body": {"html": "<p>Hi {{ user.first_name }}</p>"}
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_broken_liquid_tag_is_reported_with_its_field_line_and_column() {
        let errors = TemplateInput::from_json(&json!({
            "name": "Broken",
            "template": {
                "channel": "email",
                "from": "news@example.com",
                "subject": "Hi",
                "body": {"html": "<p>\n  {% if user.plan %}pro</p>"}
            }
        }))
        .unwrap_err();
        let error = errors
            .iter()
            .find(|error| error.path == "template.body.html")
            .unwrap_or_else(|| panic!("no error on template.body.html: {errors:?}"));
        assert!(error.position.is_some(), "{error:?}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let errors = TemplateInput::from_json(&json!({"title": "x"})).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|error| error.path.as_str()).collect();
        assert!(paths.contains(&"title"), "{paths:?}");
        assert!(paths.contains(&"name"), "{paths:?}");
        assert!(paths.contains(&"template"), "{paths:?}");
        let errors =
            TemplateInput::from_json(&json!({"name": "x", "template": {"channel": "sms"}}))
                .unwrap_err();
        assert_eq!(errors[0].path, "template.channel");
    }

    #[tokio::test]
    async fn each_save_is_a_new_version_and_old_versions_stay() {
        let table = table();
        let table = table.as_ref();
        let first = create_template(
            table,
            "ws",
            "welcome",
            input("One"),
            at("2026-03-01T09:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(first.version, 1);
        let second = update_template(
            table,
            "ws",
            "welcome",
            input("Two"),
            at("2026-03-02T09:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.created_at, first.created_at);

        let current = get_template(table, "ws", "welcome").await.unwrap().unwrap();
        assert_eq!(current, second);
        let old = get_template_version(table, "ws", "welcome", 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old, first);
        let listed = list_templates(table, "ws").await.unwrap();
        assert_eq!(listed.len(), 1, "versions are not listed: {listed:?}");
        assert_eq!((listed[0].id.as_str(), listed[0].version), ("welcome", 2));
    }

    #[tokio::test]
    async fn creating_an_existing_id_conflicts_and_updating_a_missing_one_is_not_found() {
        let table = table();
        let table = table.as_ref();
        let now = at("2026-03-01T09:00:00Z");
        create_template(table, "ws", "a", input("One"), now)
            .await
            .unwrap();
        let again = create_template(table, "ws", "a", input("One"), now).await;
        assert!(matches!(
            again,
            Err(SaveError::Domain(DomainError::Conflict(_)))
        ));
        let missing = update_template(table, "ws", "b", input("One"), now).await;
        assert!(matches!(
            missing,
            Err(SaveError::Domain(DomainError::NotFound(_)))
        ));
        let bad_id = create_template(table, "ws", "a b", input("One"), now).await;
        assert!(matches!(
            bad_id,
            Err(SaveError::Domain(DomainError::Invalid { field, .. })) if field == "id"
        ));
    }

    #[tokio::test]
    async fn a_deleted_template_hides_but_keeps_its_versions_and_its_id_continues() {
        let table = table();
        let table = table.as_ref();
        let now = at("2026-03-01T09:00:00Z");
        create_template(table, "ws", "a", input("One"), now)
            .await
            .unwrap();
        delete_template(table, "ws", "a", now).await.unwrap();
        assert!(get_template(table, "ws", "a").await.unwrap().is_none());
        assert!(list_templates(table, "ws").await.unwrap().is_empty());
        assert!(
            get_template_version(table, "ws", "a", 1)
                .await
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            delete_template(table, "ws", "a", now).await,
            Err(DomainError::NotFound(_))
        ));
        let recreated = create_template(table, "ws", "a", input("Again"), now)
            .await
            .unwrap();
        assert_eq!(recreated.version, 2);
    }
}
