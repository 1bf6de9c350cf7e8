//! Opus for voice: 48 kHz mono, VOIP application, 10 ms frames ([`crate::FRAME_DURATION`]),
//! in-band FEC and DTX on.
//!
//! The decoder has three ways to produce a frame, matching what the jitter buffer asks for:
//! [`Decoder::decode`] a packet, [`Decoder::decode_fec`] the frame *before* a packet from the
//! redundancy carried in it (in-band FEC), or [`Decoder::conceal`] a missing frame (PLC).

use crate::{FRAME_SAMPLES, PcmFrame, SAMPLE_RATE};

/// The largest Opus packet we produce or accept (RFC 6716's limit for one frame is 1275).
pub const MAX_PACKET: usize = 1500;

/// With DTX on, Opus marks silence with packets of at most two bytes (just the TOC byte);
/// like WebRTC we do not send those: the gap in RTP timestamps says "silence".
pub fn is_dtx_packet(payload: &[u8]) -> bool {
    payload.len() <= 2
}

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A packet decoded to a different length than one frame.
    #[error("packet holds {0} samples, expected {FRAME_SAMPLES}")]
    FrameSize(usize),
}

/// Encoder settings. The defaults are Hearth's voice settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// Target bitrate in bits per second (clamped to 6 000..=128 000).
    pub bitrate_bps: i32,
    /// In-band forward error correction: each packet carries a low-bitrate copy of the one
    /// before, which the receiver decodes when that one is lost.
    pub fec: bool,
    /// Discontinuous transmission: during silence the encoder produces (almost) nothing.
    pub dtx: bool,
    /// The loss rate the encoder plans FEC for, in percent (0..=100). The call layer can
    /// update it from RTCP receiver reports with [`Encoder::set_expected_loss`].
    pub expected_loss_percent: u8,
    /// 0..=10; higher is better quality for more CPU. Hearth uses 5 (WebRTC's choice on
    /// mobile): SILK keeps warped noise shaping and interpolated LSFs but searches 2
    /// delayed-decision states instead of 4 and skips the tonality analysis. On our speech
    /// test signal the decoded waveform correlates 0.948 with the input against 0.950 at 9,
    /// at the same bitrate, for 27 % fewer encoder instructions per frame (bench/README.md,
    /// voice-cpu).
    pub complexity: u8,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { bitrate_bps: 32_000, fec: true, dtx: true, expected_loss_percent: 10, complexity: 5 }
    }
}

/// An Opus encoder for mono frames of [`crate::FRAME_DURATION`].
pub struct Encoder {
    inner: opus::Encoder,
    buffer: Box<[u8; MAX_PACKET]>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    pub fn new(config: &EncoderConfig) -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(config.bitrate_bps.clamp(6_000, 128_000)))?;
        inner.set_inband_fec(config.fec)?;
        inner.set_dtx(config.dtx)?;
        inner.set_packet_loss_perc(i32::from(config.expected_loss_percent.min(100)))?;
        inner.set_complexity(i32::from(config.complexity.min(10)))?;
        inner.set_signal(opus::Signal::Voice)?;
        Ok(Encoder { inner, buffer: Box::new([0; MAX_PACKET]) })
    }

    /// Encodes one frame. The returned payload borrows the encoder's buffer; with DTX on it
    /// may be a silence marker (see [`is_dtx_packet`]).
    pub fn encode(&mut self, pcm: &PcmFrame) -> Result<&[u8], CodecError> {
        let len = self.inner.encode_float(pcm, &mut self.buffer[..])?;
        Ok(&self.buffer[..len])
    }

    pub fn set_bitrate(&mut self, bitrate_bps: i32) -> Result<(), CodecError> {
        self.inner.set_bitrate(opus::Bitrate::Bits(bitrate_bps.clamp(6_000, 128_000)))?;
        Ok(())
    }

    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner.set_packet_loss_perc(i32::from(percent.min(100)))?;
        Ok(())
    }

    /// Forgets the signal history (after a pause in transmission, so the next talkspurt does
    /// not start with a prediction from the last one).
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner.reset_state()?;
        Ok(())
    }
}

/// An Opus decoder for one remote stream.
pub struct Decoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

impl Decoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(Decoder { inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)? })
    }

    /// Decodes one packet of one frame into `out`.
    pub fn decode(&mut self, packet: &[u8], out: &mut PcmFrame) -> Result<(), CodecError> {
        let n = self.inner.decode_float(packet, out, false)?;
        expect_frame(n)
    }

    /// Rebuilds the frame *before* `next_packet` from the redundancy in it (in-band FEC). When
    /// `next_packet` carries none, libopus conceals instead, so this is never worse than
    /// [`Decoder::conceal`]. `next_packet` must still be decoded normally afterwards.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut PcmFrame) -> Result<(), CodecError> {
        let n = self.inner.decode_float(next_packet, out, true)?;
        expect_frame(n)
    }

    /// Invents a plausible frame for a lost packet (packet loss concealment), fading to
    /// silence over repeated calls.
    pub fn conceal(&mut self, out: &mut PcmFrame) -> Result<(), CodecError> {
        let n = self.inner.decode_float(&[], out, false)?;
        expect_frame(n)
    }
}

fn expect_frame(samples: usize) -> Result<(), CodecError> {
    if samples == FRAME_SAMPLES { Ok(()) } else { Err(CodecError::FrameSize(samples)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn frames(samples: &[f32]) -> impl Iterator<Item = PcmFrame> + '_ {
        samples.chunks_exact(FRAME_SAMPLES).map(|c| {
            let mut f = [0.0; FRAME_SAMPLES];
            f.copy_from_slice(c);
            f
        })
    }

    #[test]
    fn speech_survives_a_round_trip_at_32_kbit() {
        let speech = synth::utterance(&synth::Voice::speaker(0), 2.0);
        let mut enc = Encoder::new(&EncoderConfig::default()).unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut out = Vec::new();
        let mut bytes = 0;
        for frame in frames(&speech) {
            let packet = enc.encode(&frame).unwrap().to_vec();
            bytes += packet.len();
            let mut pcm = [0.0; FRAME_SAMPLES];
            if is_dtx_packet(&packet) {
                dec.conceal(&mut pcm).unwrap();
            } else {
                dec.decode(&packet, &mut pcm).unwrap();
            }
            out.extend_from_slice(&pcm);
        }
        let alignment = synth::align(&speech, &out, 960);
        assert!(alignment.correlation > 0.85, "{alignment:?}");
        // About 32 kbit/s while speaking, less overall thanks to DTX in the pauses.
        let kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
        assert!(kbps < 36.0 && kbps > 8.0, "{kbps} kbit/s");
    }

    #[test]
    fn silence_becomes_dtx_packets() {
        let mut enc = Encoder::new(&EncoderConfig::default()).unwrap();
        let silent = [0.0; FRAME_SAMPLES];
        let second = crate::FRAMES_PER_SECOND;
        let dtx = (0..second).filter(|_| is_dtx_packet(enc.encode(&silent).unwrap())).count();
        // DTX starts after a short hangover; most of one second of silence is not sent.
        assert!(dtx > second * 7 / 10, "{dtx} of {second} frames were DTX");
    }

    #[test]
    fn fec_recovers_a_lost_frame_better_than_plc() {
        let speech = synth::utterance(&synth::Voice::speaker(1), 3.0);
        let mut enc = Encoder::new(&EncoderConfig::default()).unwrap();
        let packets: Vec<Vec<u8>> = frames(&speech).map(|f| enc.encode(&f).unwrap().to_vec()).collect();
        // Lose every 10th packet among voiced frames; compare the lost frames against the
        // clean decode of the same stream.
        let run = |use_fec: bool| -> f32 {
            let mut clean = Decoder::new().unwrap();
            let mut lossy = Decoder::new().unwrap();
            let (mut num, mut den_a, mut den_b) = (0.0f64, 0.0f64, 0.0f64);
            for (i, packet) in packets.iter().enumerate() {
                let mut reference = [0.0; FRAME_SAMPLES];
                clean.decode(packet, &mut reference).unwrap();
                let mut got = [0.0; FRAME_SAMPLES];
                let lost = i % 10 == 5 && !is_dtx_packet(packet) && i + 1 < packets.len();
                if lost {
                    if use_fec {
                        lossy.decode_fec(&packets[i + 1], &mut got).unwrap();
                    } else {
                        lossy.conceal(&mut got).unwrap();
                    }
                    for (a, b) in reference.iter().zip(&got) {
                        num += f64::from(*a) * f64::from(*b);
                        den_a += f64::from(*a).powi(2);
                        den_b += f64::from(*b).powi(2);
                    }
                } else {
                    lossy.decode(packet, &mut got).unwrap();
                }
            }
            (num / (den_a * den_b).sqrt().max(1e-9)) as f32
        };
        let fec = run(true);
        let plc = run(false);
        assert!(fec > plc + 0.1 && fec > 0.5, "fec {fec} plc {plc}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = Decoder::new().unwrap();
        let mut out = [0.0; FRAME_SAMPLES];
        // A TOC byte announcing a 60 ms frame: too long for one frame.
        assert!(dec.decode(&[0xff, 0xff, 0xff, 0xff], &mut out).is_err());
        dec.conceal(&mut out).unwrap();
    }
}
