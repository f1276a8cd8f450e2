//! Which encodings of its chunks a topic builds: the raw frames always; the stream-mode
//! envelopes while it has stream-mode readers; the envelopes naming the topic while it has
//! pattern readers. Each is built once per chunk and shared by every reader of that form.

use std::sync::atomic::{AtomicUsize, Ordering};

use wspubsub_fanout::{Form, Record};

/// How many of a topic's readers take each form that must be built. Readers join and leave
/// under the backlog's lock, which the actor appends under, so every reader that will read a
/// chunk is counted when the actor decides what to build for it.
#[derive(Debug, Default)]
pub(crate) struct FormReaders {
    enveloped: AtomicUsize,
    named: AtomicUsize,
}

impl FormReaders {
    /// The count of readers of `form`; `None` for raw frames, which are always built.
    fn count(&self, form: Form) -> Option<&AtomicUsize> {
        match form {
            Form::Raw => None,
            Form::Enveloped => Some(&self.enveloped),
            Form::Named => Some(&self.named),
        }
    }

    /// A reader of `form` joined.
    pub(crate) fn joined(&self, form: Form) {
        if let Some(count) = self.count(form) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reader of `form` left.
    pub(crate) fn left(&self, form: Form) {
        if let Some(count) = self.count(form) {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Builds into `record` of topic `topic` every form its readers take (once: a form
    /// already built stays).
    pub(crate) fn build(&self, record: &mut Record, topic: &str) {
        if self.enveloped.load(Ordering::Relaxed) > 0 {
            record.envelop();
        }
        if self.named.load(Ordering::Relaxed) > 0 {
            record.name(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wspubsub_fanout::RecordBuilder;

    fn record() -> Record {
        let mut builder = RecordBuilder::new(usize::MAX);
        let _ = builder.push(b"m", std::time::Instant::now(), 1, 0);
        builder.finish().expect("a record")
    }

    #[test]
    fn only_the_forms_with_readers_are_built() {
        let readers = FormReaders::default();
        let mut plain = record();
        readers.build(&mut plain, "/t");
        assert!(plain.chunk.enveloped.is_none() && plain.chunk.named.is_none());
        readers.joined(Form::Raw);
        readers.joined(Form::Named);
        let mut named = record();
        readers.build(&mut named, "/t");
        assert!(named.chunk.enveloped.is_none() && named.chunk.named.is_some());
        readers.joined(Form::Enveloped);
        readers.left(Form::Named);
        let mut enveloped = record();
        readers.build(&mut enveloped, "/t");
        assert!(enveloped.chunk.enveloped.is_some() && enveloped.chunk.named.is_none());
    }
}
