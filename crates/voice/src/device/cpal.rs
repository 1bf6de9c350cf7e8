//! Real audio devices through cpal (ALSA on Linux, WASAPI on Windows, CoreAudio on macOS):
//! enumeration, selection by name, and streams adapted to 48 kHz mono `f32` frames.
//!
//! A device runs 48 kHz when it can, else its own rate (a Windows mix format of 44.1 kHz),
//! and every stream goes through a [`Resampler`] whose ratio the [`DriftControl`] nudges so
//! that the queue between the device's clock and the audio thread's stays at one device
//! callback plus a margin (see [`super::rate`]). Resampling happens on the audio thread, in
//! `read_frame`/`write_frame`; the device callbacks only copy samples.
//!
//! cpal runs its callbacks on the backend's own audio thread, and its `Stream` is not `Send`
//! on every platform, so each opened device gets a small thread that builds the stream, keeps
//! it alive and drops it when the [`CpalInput`]/[`CpalOutput`] is dropped. The callbacks and
//! the pipeline meet in a bounded sample queue: the callback only locks it to copy samples in
//! or out (no allocation once it is warm), and overflow drops the oldest audio rather than
//! letting latency grow.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};

use super::rate::{DriftControl, Resampler};
use super::{AudioInput, AudioOutput, DeviceError};
use crate::{FRAME_SAMPLES, PcmFrame, SAMPLE_RATE};

/// At most this much captured or queued audio is kept (200 ms at `rate`): a safety net, since
/// the drift control keeps the queue near one device callback.
fn queue_limit(rate: u32) -> usize {
    rate as usize / 5
}

/// Names of the input devices of the default host, in the host's order.
pub fn input_device_names() -> Result<Vec<String>, DeviceError> {
    let host = cpal::default_host();
    let devices = host.input_devices().map_err(backend)?;
    Ok(devices.map(|d| d.to_string()).collect())
}

/// Names of the output devices of the default host, in the host's order.
pub fn output_device_names() -> Result<Vec<String>, DeviceError> {
    let host = cpal::default_host();
    let devices = host.output_devices().map_err(backend)?;
    Ok(devices.map(|d| d.to_string()).collect())
}

fn backend(err: impl std::fmt::Display) -> DeviceError {
    DeviceError::Backend(err.to_string())
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Input,
    Output,
}

fn find_device(direction: Direction, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
    let host = cpal::default_host();
    match (direction, name) {
        (Direction::Input, None) => host.default_input_device().ok_or(DeviceError::NoDefault("input")),
        (Direction::Output, None) => host.default_output_device().ok_or(DeviceError::NoDefault("output")),
        (Direction::Input, Some(name)) => host
            .input_devices()
            .map_err(backend)?
            .find(|d| d.to_string() == name)
            .ok_or_else(|| DeviceError::NotFound { name: name.to_owned() }),
        (Direction::Output, Some(name)) => host
            .output_devices()
            .map_err(backend)?
            .find(|d| d.to_string() == name)
            .ok_or_else(|| DeviceError::NotFound { name: name.to_owned() }),
    }
}

/// Picks a configuration in f32 (preferred) or i16: 48 kHz if the device has it, else the rate
/// nearest to it; then as few channels as possible.
fn choose_config(
    device: &cpal::Device,
    direction: Direction,
) -> Result<(StreamConfig, SampleFormat), DeviceError> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => device.supported_input_configs().map_err(backend)?.collect(),
        Direction::Output => device.supported_output_configs().map_err(backend)?.collect(),
    };
    let format_rank = |f: SampleFormat| match f {
        SampleFormat::F32 => Some(0),
        SampleFormat::I16 => Some(1),
        _ => None,
    };
    let best = ranges
        .into_iter()
        .filter_map(|r| {
            let rate = SAMPLE_RATE.clamp(r.min_sample_rate(), r.max_sample_rate());
            format_rank(r.sample_format())
                .map(|rank| ((rate.abs_diff(SAMPLE_RATE), rank, r.channels()), rate, r))
        })
        .filter(|(_, rate, _)| *rate >= 8_000)
        .min_by_key(|(key, _, _)| *key);
    match best {
        Some((_, rate, range)) => {
            let supported = range.with_sample_rate(rate);
            Ok((supported.config(), supported.sample_format()))
        }
        None => Err(DeviceError::Unsupported {
            name: device.to_string(),
            what: "f32 or i16 samples at 8 kHz or more".to_owned(),
        }),
    }
}

/// What the audio callback and the pipeline share: the samples, and the last stream error,
/// which the next read or write reports.
#[derive(Default)]
struct Shared {
    /// Mono samples at the device's rate.
    samples: VecDeque<f32>,
    error: Option<String>,
    /// The most samples (mono, device rate) one callback has moved.
    largest_chunk: usize,
}

type Queue = Arc<Mutex<Shared>>;

fn take_error(shared: &mut Shared) -> Result<(), DeviceError> {
    match shared.error.take() {
        Some(err) => Err(DeviceError::Backend(err)),
        None => Ok(()),
    }
}

/// Keeps a cpal stream alive on its own thread until dropped.
struct StreamThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    name: String,
    /// The device's sample rate.
    rate: u32,
}

impl StreamThread {
    fn spawn(direction: Direction, name: Option<String>, queue: Queue) -> Result<StreamThread, DeviceError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(String, u32), DeviceError>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("hearth-audio-device".to_owned())
            .spawn(move || {
                let opened = open_stream(direction, name.as_deref(), queue);
                match opened {
                    Ok((stream, name, rate)) => {
                        if ready_tx.send(Ok((name, rate))).is_ok() {
                            // Returns when the owner drops its sender.
                            let _closed = stop_rx.recv();
                        }
                        drop(stream);
                    }
                    Err(err) => {
                        // The receiver is waiting right below; if it is gone there is
                        // nobody to tell.
                        let _unheard = ready_tx.send(Err(err));
                    }
                }
            })
            .map_err(backend)?;
        match ready_rx.recv() {
            Ok(Ok((name, rate))) => {
                Ok(StreamThread { stop: Some(stop_tx), thread: Some(thread), name, rate })
            }
            Ok(Err(err)) => {
                let _finished = thread.join();
                Err(err)
            }
            Err(_) => {
                let _panicked = thread.join();
                Err(DeviceError::Backend("audio device thread ended unexpectedly".to_owned()))
            }
        }
    }
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _finished = thread.join();
        }
    }
}

fn open_stream(
    direction: Direction,
    name: Option<&str>,
    queue: Queue,
) -> Result<(cpal::Stream, String, u32), DeviceError> {
    let device = find_device(direction, name)?;
    let (config, format) = choose_config(&device, direction)?;
    let error_slot = queue.clone();
    let on_error = move |err: cpal::Error| {
        // Reported by the next read or write; the call layer decides whether to reopen.
        error_slot.lock().unwrap_or_else(PoisonError::into_inner).error = Some(err.to_string());
    };
    let stream = match (direction, format) {
        (Direction::Input, SampleFormat::F32) => input_stream::<f32>(&device, &config, queue, on_error),
        (Direction::Input, _) => input_stream::<i16>(&device, &config, queue, on_error),
        (Direction::Output, SampleFormat::F32) => output_stream::<f32>(&device, &config, queue, on_error),
        (Direction::Output, _) => output_stream::<i16>(&device, &config, queue, on_error),
    }?;
    stream.play().map_err(backend)?;
    Ok((stream, device.to_string(), config.sample_rate))
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    queue: Queue,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels).max(1);
    let limit = queue_limit(config.sample_rate);
    device
        .build_input_stream::<T, _, _>(
            *config,
            move |data: &[T], _| {
                let mut shared = queue.lock().unwrap_or_else(PoisonError::into_inner);
                let queue = &mut shared.samples;
                // Down-mix to mono by averaging the channels of each sample frame.
                for chunk in data.chunks(channels) {
                    let sum: f32 = chunk.iter().map(|s| s.to_sample::<f32>()).sum();
                    queue.push_back(sum / channels as f32);
                }
                let excess = queue.len().saturating_sub(limit);
                queue.drain(..excess);
                shared.largest_chunk = shared.largest_chunk.max(data.len() / channels);
            },
            on_error,
            None,
        )
        .map_err(backend)
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    queue: Queue,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, DeviceError>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels).max(1);
    device
        .build_output_stream::<T, _, _>(
            *config,
            move |data: &mut [T], _| {
                let mut shared = queue.lock().unwrap_or_else(PoisonError::into_inner);
                shared.largest_chunk = shared.largest_chunk.max(data.len() / channels);
                let queue = &mut shared.samples;
                for chunk in data.chunks_mut(channels) {
                    // An empty queue (underrun) plays silence.
                    let sample = queue.pop_front().unwrap_or(0.0);
                    chunk.fill(T::from_sample(sample));
                }
            },
            on_error,
            None,
        )
        .map_err(backend)
}

/// A microphone opened through cpal.
pub struct CpalInput {
    queue: Queue,
    resampler: Resampler,
    drift: DriftControl,
    stream: StreamThread,
}

impl CpalInput {
    /// Opens the input device called `name` (as listed by [`input_device_names`]), or the
    /// default one.
    pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
        let queue = Queue::default();
        let stream = StreamThread::spawn(Direction::Input, name.map(str::to_owned), queue.clone())?;
        let resampler = Resampler::new(stream.rate, SAMPLE_RATE);
        Ok(CpalInput { queue, resampler, drift: DriftControl::input(), stream })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.stream.name
    }

    /// The rate the device runs at (resampled to 48 kHz).
    pub fn device_rate(&self) -> u32 {
        self.stream.rate
    }
}

impl AudioInput for CpalInput {
    fn read_frame(&mut self, frame: &mut PcmFrame) -> Result<bool, DeviceError> {
        {
            let mut shared = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            take_error(&mut shared)?;
            self.resampler.push(shared.samples.drain(..));
            // A device chunk, in our samples.
            self.drift.chunk((shared.largest_chunk as f64 / self.resampler.nominal_ratio()).ceil() as usize);
        }
        let complete = self.resampler.produce(frame);
        let correction = self.drift.update(self.resampler.available());
        self.resampler.set_correction(correction);
        Ok(complete)
    }
}

/// A speaker opened through cpal.
pub struct CpalOutput {
    queue: Queue,
    resampler: Resampler,
    drift: DriftControl,
    /// Resampled samples on their way into the queue (kept to avoid allocating per frame).
    scratch: Vec<f32>,
    stream: StreamThread,
}

impl CpalOutput {
    /// Opens the output device called `name` (as listed by [`output_device_names`]), or the
    /// default one.
    pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
        let queue = Queue::default();
        let stream = StreamThread::spawn(Direction::Output, name.map(str::to_owned), queue.clone())?;
        let resampler = Resampler::new(SAMPLE_RATE, stream.rate);
        let scratch = Vec::with_capacity(2 * FRAME_SAMPLES);
        Ok(CpalOutput { queue, resampler, drift: DriftControl::output(), scratch, stream })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.stream.name
    }

    /// The rate the device runs at (resampled from 48 kHz).
    pub fn device_rate(&self) -> u32 {
        self.stream.rate
    }
}

impl AudioOutput for CpalOutput {
    fn write_frame(&mut self, frame: &PcmFrame) -> Result<(), DeviceError> {
        self.resampler.push(frame.iter().copied());
        self.scratch.clear();
        self.resampler.drain_into(&mut self.scratch);
        let mut shared = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        take_error(&mut shared)?;
        let limit = queue_limit(self.stream.rate);
        let queue = &mut shared.samples;
        queue.extend(self.scratch.iter().copied());
        // Far more queued than the drift control allows: the device stalled. Drop the oldest.
        let excess = queue.len().saturating_sub(limit);
        queue.drain(..excess);
        // Device samples, in our samples (each of ours is `nominal_ratio` of the device's).
        let per_device_sample = self.resampler.nominal_ratio();
        let level = (queue.len() as f64 * per_device_sample) as usize;
        self.drift.chunk((shared.largest_chunk as f64 * per_device_sample).ceil() as usize);
        drop(shared);
        let correction = self.drift.update(level);
        self.resampler.set_correction(correction);
        Ok(())
    }

    fn queued_samples(&self) -> usize {
        let queued = self.queue.lock().unwrap_or_else(PoisonError::into_inner).samples.len();
        (queued as f64 * self.resampler.nominal_ratio()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_refused_by_name() {
        // No sound card here; either the host has no devices or none has this name. Both are
        // errors, never a panic.
        assert!(CpalInput::open(Some("no such microphone, surely")).is_err());
        assert!(CpalOutput::open(Some("no such speaker, surely")).is_err());
    }
}
