// The Socket.IO 4 peer of bench/: the same job as Hearth's channel fan-out, done the way a
// Socket.IO app does it. Every socket that passes the handshake joins one room; every "msg"
// event it sends is emitted to the whole room (the sender included, as Hearth delivers a
// message to every session of the channel, the sender's own too).
//
// Usage: node server.js --addr-file PATH [--port 0]
// Writes "127.0.0.1:PORT" to PATH (atomically) once listening. Besides Socket.IO it answers:
//   GET /stats  -> {"sockets":N,"rss":BYTES,"heapUsed":BYTES}
//   GET /gc     -> runs a full garbage collection when node runs with --expose-gc
// The harness uses /stats to wait for connections and /gc before reading the RSS, so the peer
// is measured at its best.

import { createServer } from "node:http";
import { renameSync, writeFileSync } from "node:fs";
import { Server } from "socket.io";

function parseArgs(argv) {
  const args = { port: 0, addrFile: null };
  for (let i = 2; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--port" && value !== undefined) {
      args.port = Number(value);
      i++;
    } else if (flag === "--addr-file" && value !== undefined) {
      args.addrFile = value;
      i++;
    } else {
      console.error(`unknown argument: ${flag}`);
      process.exit(2);
    }
  }
  if (!args.addrFile) {
    console.error("usage: node server.js --addr-file PATH [--port N]");
    process.exit(2);
  }
  return args;
}

const ROOM = "bench";
// Stands in for a session check: the harness presents this in the handshake `auth` object.
const TOKEN = process.env.HEARTH_BENCH_SIO_TOKEN ?? "bench";

const args = parseArgs(process.argv);

const http = createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    const mem = process.memoryUsage();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ sockets: io.of("/").sockets.size, rss: mem.rss, heapUsed: mem.heapUsed }));
    return;
  }
  if (req.method === "GET" && req.url === "/gc") {
    if (typeof globalThis.gc === "function") {
      globalThis.gc();
    }
    res.writeHead(204);
    res.end();
    return;
  }
  // Everything else under /socket.io/ is handled by engine.io's own listener.
  if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
});

const io = new Server(http, {
  // Hearth's gateway is WebSocket-only; so is the peer (no long-polling fallback, no upgrade).
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  // Same frame cap as Hearth (crates/protocol MAX_FRAME_BYTES).
  maxHttpBufferSize: 64 * 1024,
});

io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === TOKEN) {
    next();
  } else {
    next(new Error("unauthorized"));
  }
});

io.on("connection", (socket) => {
  socket.join(ROOM);
  socket.on("msg", (content) => {
    if (typeof content !== "string" || content.length > 4000) {
      return;
    }
    io.to(ROOM).emit("msg", content);
  });
});

http.listen(args.port, "127.0.0.1", () => {
  const { port } = http.address();
  const tmp = `${args.addrFile}.tmp`;
  writeFileSync(tmp, `127.0.0.1:${port}\n`);
  renameSync(tmp, args.addrFile);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
