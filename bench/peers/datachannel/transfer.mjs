// The transfer bench's peer: the same file transfer as Hearth's, done with node-datachannel
// (libdatachannel) in one process, two peer connections on loopback. The sender reads 64 KiB
// chunks, hashes each (SHA-256) and sends header + chunk on one reliable ordered channel,
// pausing above 4 MiB buffered until the 1 MiB low-threshold event; the receiver checks each
// chunk's hash, writes it in place, and checks the whole file's SHA-256 at the end.
// Usage: node transfer.mjs SOURCE DEST_FILE. Prints one JSON line: {"bytes","seconds","ok"}.
import { createHash } from 'node:crypto';
import { openSync, readSync, writeSync, closeSync, fstatSync, readFileSync } from 'node:fs';
import nodeDataChannel from 'node-datachannel';

const [source, dest] = process.argv.slice(2);
const CHUNK = 64 * 1024;
const HEADER = 1 + 4 + 8 + 32;
const HIGH = 4 * 1024 * 1024;
const LOW = 1024 * 1024;
const config = { iceServers: [], bindAddress: '127.0.0.1', maxMessageSize: 128 * 1024 };

const fd = openSync(source, 'r');
const size = fstatSync(fd).size;
const chunks = Math.ceil(size / CHUNK);
// The whole-file hash is announced first, as Hearth's manifest does (hashed before timing).
const expected = createHash('sha256');
{
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let off = 0; off < size; ) {
    const n = readSync(fd, buf, 0, buf.length, off);
    expected.update(buf.subarray(0, n));
    off += n;
  }
}
const wholeHash = expected.digest('hex');

const a = new nodeDataChannel.PeerConnection('sender', config);
const b = new nodeDataChannel.PeerConnection('receiver', config);
a.onLocalDescription((sdp, type) => b.setRemoteDescription(sdp, type));
b.onLocalDescription((sdp, type) => a.setRemoteDescription(sdp, type));
a.onLocalCandidate((c, mid) => b.addRemoteCandidate(c, mid));
b.onLocalCandidate((c, mid) => a.addRemoteCandidate(c, mid));

const out = openSync(dest, 'w');
let started = 0;
let received = 0;
// Kept referenced for the whole run: an unreferenced remote channel is garbage-collected and closes.
const channels = [];

b.onDataChannel((dc) => {
  channels.push(dc);
  dc.onMessage((msg) => {
    const m = Buffer.isBuffer(msg) ? msg : Buffer.from(msg);
    const index = Number(m.readBigUInt64LE(5));
    const data = m.subarray(HEADER);
    const sha = createHash('sha256').update(data).digest();
    if (!sha.equals(m.subarray(13, HEADER))) throw new Error(`chunk ${index} corrupt`);
    writeSync(out, data, 0, data.length, index * CHUNK);
    received += 1;
    if (received === chunks) finish();
  });
});

function finish() {
  const seconds = (performance.now() - started) / 1000;
  closeSync(out);
  const got = createHash('sha256').update(readFileSync(dest)).digest('hex');
  console.log(JSON.stringify({ bytes: size, seconds, ok: got === wholeHash }));
  for (const dc of channels) dc.close();
  a.close();
  b.close();
  nodeDataChannel.cleanup();
  process.exit(got === wholeHash ? 0 : 1);
}

const dc = a.createDataChannel('transfer');
channels.push(dc);
dc.setBufferedAmountLowThreshold(LOW);
let next = 0;
const buf = Buffer.allocUnsafe(CHUNK);
function pump() {
  while (next < chunks && dc.bufferedAmount() < HIGH) {
    const off = next * CHUNK;
    const n = readSync(fd, buf, 0, CHUNK, off);
    const msg = Buffer.allocUnsafe(HEADER + n);
    msg.writeUInt8(4, 0);
    msg.writeUInt32LE(0, 1);
    msg.writeBigUInt64LE(BigInt(next), 5);
    createHash('sha256').update(buf.subarray(0, n)).digest().copy(msg, 13);
    buf.copy(msg, HEADER, 0, n);
    dc.sendMessageBinary(msg);
    next += 1;
  }
}
dc.onBufferedAmountLow(pump);
dc.onOpen(() => {
  started = performance.now();
  pump();
});
