//! What a factory gets besides its config: its id and config path, self-telemetry, the
//! extensions the graph declares, and the values components create on demand.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::typed::{ConfigErrors, ExtensionComponent};
use super::ComponentId;
use crate::telemetry::Telemetry;

/// A task that a component needs running while the graph runs (a cache watcher, a server).
/// Extensions' tasks start first; every other component's start after the exporters and
/// before the receivers. All are cancelled at shutdown.
pub type BackgroundTask = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

type AnyArc = Arc<dyn Any + Send + Sync>;

/// A value as stored: its type's id and name (to refuse another type), and the value.
type Stored = (TypeId, &'static str, AnyArc);

/// Values created on first use and shared by every component of one graph, by key: what a
/// component falls back to when its config names no extension (the one Kubernetes cache that
/// `k8s` and `zones` share). A key holds one type; asking for it as another is an error.
#[derive(Clone, Default)]
pub struct SharedState {
    inner: Arc<Mutex<HashMap<String, Stored>>>,
}

impl SharedState {
    /// The value stored under `key`, created by `init` on first use. Fails, naming both types,
    /// when `key` already holds a value of another type.
    pub fn get_or_init<T: Any + Send + Sync>(
        &self,
        key: &str,
        init: impl FnOnce() -> T,
    ) -> Result<Arc<T>, String> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((type_id, type_name, value)) = map.get(key) {
            if *type_id != TypeId::of::<T>() {
                return Err(format!(
                    "the shared value {key:?} holds a {type_name}, not a {}",
                    std::any::type_name::<T>()
                ));
            }
            return Ok(value
                .clone()
                .downcast::<T>()
                .expect("the type id was checked"));
        }
        let value = Arc::new(init());
        map.insert(
            key.to_string(),
            (TypeId::of::<T>(), std::any::type_name::<T>(), value.clone()),
        );
        Ok(value)
    }
}

/// One built extension: its type name (to check references) and the value components use.
#[derive(Clone)]
pub struct BuiltExtension {
    pub type_name: &'static str,
    pub value: AnyArc,
}

/// The extensions of one graph: those declared under `extensions:` and which of them
/// `service.extensions` enables.
#[derive(Clone, Default)]
pub struct Extensions {
    pub(crate) declared: BTreeSet<String>,
    pub(crate) built: BTreeMap<String, BuiltExtension>,
}

impl Extensions {
    /// The built extension `reference` (an id enabled in `service.extensions`), checked to be
    /// of type `E`.
    pub fn get<E: ExtensionComponent>(&self, reference: &str) -> Result<Arc<E::Extension>, String> {
        let Some(built) = self.built.get(reference) else {
            if self.declared.contains(reference) {
                return Err(format!(
                    "extension {reference:?} is declared but not enabled: list it in service.extensions"
                ));
            }
            let hint = crate::config::closest(reference, self.declared.iter().map(String::as_str))
                .map(|c| format!(" (did you mean {c:?}?)"))
                .unwrap_or_default();
            return Err(format!(
                "extension {reference:?} is not declared under extensions{hint}"
            ));
        };
        if built.type_name != E::TYPE_NAME {
            return Err(format!(
                "extension {reference:?} is a {} extension; this needs a {} extension",
                built.type_name,
                E::TYPE_NAME
            ));
        }
        built.value.clone().downcast::<E::Extension>().map_err(|_| {
            format!(
                "extension {reference:?} of type {} was built by another factory than this component expects",
                E::TYPE_NAME
            )
        })
    }
}

/// What a factory gets besides its config.
pub struct BuildContext {
    pub id: ComponentId,
    /// The component's config path (`processors.k8s/east`), for messages about fields that a
    /// component checks itself.
    pub path: String,
    pub telemetry: Telemetry,
    pub shared: SharedState,
    pub extensions: Extensions,
    background: Arc<Mutex<Vec<(String, BackgroundTask)>>>,
}

impl BuildContext {
    /// A context for `id` with no extensions declared; its config path is derived from the id
    /// alone, so set [`BuildContext::at`] where the kind is known.
    pub fn new(id: ComponentId, telemetry: Telemetry, shared: SharedState) -> Self {
        BuildContext {
            path: id.to_string(),
            id,
            telemetry,
            shared,
            extensions: Extensions::default(),
            background: Default::default(),
        }
    }
    /// The same context at config path `path`.
    pub fn at(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
    /// The same context, seeing `extensions`.
    pub fn with_extensions(mut self, extensions: Extensions) -> Self {
        self.extensions = extensions;
        self
    }
    /// Registers a task to run while the graph runs. Nothing runs during `validate`.
    pub fn spawn_on_start(&self, task: BackgroundTask) {
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.id.to_string(), task));
    }
    pub(crate) fn take_background(&self) -> Vec<(String, BackgroundTask)> {
        std::mem::take(&mut *self.background.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The extension of type `E` that the config field `field` names, or, when the config
    /// names none (`reference` is `None`), the graph-wide default one under `E`'s type name,
    /// created by `default` on first use: what the component did before extensions existed.
    pub fn extension_or_default<E: ExtensionComponent>(
        &self,
        field: &str,
        reference: Option<&str>,
        default: impl FnOnce() -> E::Extension,
    ) -> Result<Arc<E::Extension>, ConfigErrors> {
        match reference {
            Some(r) => self.extension::<E>(field, r),
            None => self
                .shared
                .get_or_init(&format!("extension.{}.default", E::TYPE_NAME), default)
                .map_err(|e| ConfigErrors::at(field, e)),
        }
    }

    /// The extension of type `E` named `reference` by the config field `field`.
    pub fn extension<E: ExtensionComponent>(
        &self,
        field: &str,
        reference: &str,
    ) -> Result<Arc<E::Extension>, ConfigErrors> {
        self.extensions
            .get::<E>(reference)
            .map_err(|e| ConfigErrors::at(field, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_one_type_and_a_clash_is_an_error() {
        let shared = SharedState::default();
        let a = shared.get_or_init("k", || 7u32).unwrap();
        let b = shared.get_or_init("k", || 9u32).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the second call gets the first value");
        let err = shared.get_or_init("k", || "text").unwrap_err();
        assert!(err.contains("u32") && err.contains("&str"), "{err}");
        assert_eq!(*shared.get_or_init("k", || 0u32).unwrap(), 7, "still there");
    }
}
