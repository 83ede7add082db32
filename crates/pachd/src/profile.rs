//! CPU profiles of pachd in pprof's format (`profile.proto`, which `go tool
//! pprof` and other pprof readers open): the `pprof` crate samples every
//! thread's stack on SIGPROF; this turns its samples into a `Profile`
//! message.
//!
//! Invariant: one profile at a time (the sampler is process-wide); a second
//! request is refused, not queued.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Samples per second (not 100: a rate in step with other periodic work
/// would see it always or never).
const FREQUENCY: i32 = 99;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("a CPU profile of this pachd is already being taken; wait for it to end and try again")]
    Busy,
    #[error("cannot take a CPU profile: {0}")]
    Sampler(String),
}

/// Samples pachd's CPU for `duration` (blocking the calling thread) and
/// returns the profile, protobuf-encoded.
pub fn cpu(duration: Duration) -> Result<Vec<u8>, ProfileError> {
    // Unwinding through these libraries from a signal handler can deadlock.
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => ProfileError::Busy,
            e => ProfileError::Sampler(e.to_string()),
        })?;
    let started = SystemTime::now();
    std::thread::sleep(duration);
    let report = guard
        .report()
        .build()
        .map_err(|e| ProfileError::Sampler(e.to_string()))?;
    drop(guard);
    let samples = report.data.iter().map(|(frames, count)| Sample {
        thread: frames.thread_name_or_id(),
        // Innermost frame first, as profile.proto wants; a frame holds the
        // functions inlined at that address, innermost first too.
        stack: frames
            .frames
            .iter()
            .flatten()
            .map(|s| Frame {
                name: s.name(),
                file: s.filename().into_owned(),
                line: i64::from(s.lineno()),
            })
            .collect(),
        count: i64::try_from(*count).unwrap_or(0),
    });
    Ok(encode(samples, started, duration))
}

/// One function at one line of a sampled stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub name: String,
    pub file: String,
    pub line: i64,
}

/// A stack seen `count` times on a thread.
pub struct Sample {
    pub thread: String,
    pub stack: Vec<Frame>,
    pub count: i64,
}

/// The `Profile` message of samples taken at [`FREQUENCY`] from `started`
/// for `duration`: two values per sample, the count and the CPU time.
pub fn encode(
    samples: impl Iterator<Item = Sample>,
    started: SystemTime,
    duration: Duration,
) -> Vec<u8> {
    let period_ns = 1_000_000_000 / i64::from(FREQUENCY);
    let mut t = Tables::default();
    let sample_type = vec![
        ValueType {
            r#type: t.string("samples"),
            unit: t.string("count"),
        },
        ValueType {
            r#type: t.string("cpu"),
            unit: t.string("nanoseconds"),
        },
    ];
    let thread_key = t.string("thread");
    let sample = samples
        .map(|s| pb_sample(&mut t, s, thread_key, period_ns))
        .collect();
    let period_type = ValueType {
        r#type: t.string("cpu"),
        unit: t.string("nanoseconds"),
    };
    let profile = Profile {
        sample_type,
        sample,
        location: t.locations,
        function: t.functions,
        string_table: t.strings,
        time_nanos: started
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0),
        duration_nanos: i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX),
        period_type: Some(period_type),
        period: period_ns,
    };
    prost::Message::encode_to_vec(&profile)
}

fn pb_sample(t: &mut Tables, s: Sample, thread_key: i64, period_ns: i64) -> PbSample {
    let location_id = s.stack.into_iter().map(|f| t.location(f)).collect();
    PbSample {
        location_id,
        value: vec![s.count, s.count.saturating_mul(period_ns)],
        label: vec![Label {
            key: thread_key,
            str: t.string(&s.thread),
        }],
    }
}

/// The string, function and location tables of a profile being built; each
/// entry once (ids are 1-based, index 0 of the strings is "").
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(String, String), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<Frame, u64>,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            strings: vec![String::new()],
            string_ids: HashMap::from([(String::new(), 0)]),
            functions: vec![],
            function_ids: HashMap::new(),
            locations: vec![],
            location_ids: HashMap::new(),
        }
    }
}

impl Tables {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (name.to_string(), file.to_string());
        if let Some(id) = self.function_ids.get(&key) {
            return *id;
        }
        let id = self.functions.len() as u64 + 1;
        let f = Function {
            id,
            name: self.string(name),
            system_name: self.string(name),
            filename: self.string(file),
        };
        self.functions.push(f);
        self.function_ids.insert(key, id);
        id
    }

    fn location(&mut self, frame: Frame) -> u64 {
        if let Some(id) = self.location_ids.get(&frame) {
            return *id;
        }
        let id = self.locations.len() as u64 + 1;
        let function_id = self.function(&frame.name, &frame.file);
        self.locations.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: frame.line,
            }],
        });
        self.location_ids.insert(frame, id);
        id
    }
}

// The messages of pprof's profile.proto (package perftools.profiles) that a
// CPU profile uses, with their field numbers.

#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<PbSample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PbSample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, line: i64) -> Frame {
        Frame {
            name: name.into(),
            file: "src/x.rs".into(),
            line,
        }
    }

    #[test]
    fn samples_share_functions_and_locations() {
        let samples = vec![
            Sample {
                thread: "tokio-runtime-worker".into(),
                stack: vec![frame("leaf", 3), frame("main", 10)],
                count: 4,
            },
            Sample {
                thread: "tokio-runtime-worker".into(),
                stack: vec![frame("leaf", 5), frame("main", 10)],
                count: 1,
            },
        ];
        let bytes = encode(samples.into_iter(), UNIX_EPOCH, Duration::from_secs(1));
        let p: Profile = prost::Message::decode(bytes.as_slice()).unwrap();
        assert_eq!(p.string_table[0], "");
        assert_eq!(p.sample.len(), 2);
        // leaf:3, leaf:5 and main:10 are three locations of two functions.
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.sample[0].location_id, vec![1, 2]);
        assert_eq!(p.sample[1].location_id, vec![3, 2]);
        assert_eq!(p.sample[0].value, vec![4, 4 * (1_000_000_000 / 99)]);
        let name = |f: &Function| p.string_table[f.name as usize].clone();
        assert_eq!(name(&p.function[0]), "leaf");
        assert_eq!(name(&p.function[1]), "main");
        let ty = |v: &ValueType| p.string_table[v.r#type as usize].clone();
        assert_eq!(ty(&p.sample_type[1]), "cpu");
        assert_eq!(p.duration_nanos, 1_000_000_000);
    }

    #[test]
    fn a_busy_process_yields_samples() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spin = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        };
        let bytes = cpu(Duration::from_millis(500)).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spin.join().unwrap();
        let p: Profile = prost::Message::decode(bytes.as_slice()).unwrap();
        let samples: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert!(samples > 10, "{samples} samples in 0.5 s of a busy thread");
        assert!(!p.function.is_empty());
    }
}
