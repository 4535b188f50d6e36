'use strict';
// Plain-WebSocket room-broadcast peer for bench/loadgen --target ws. Usage: node ws-server.js PORT
// Text frames, JSON: {"id":N,"op":"join","room":R} -> {"re":N,"ok":{"room":R}};
// {"op":"send","room":R,"body":B} -> {"ev":"message","room":R,"body":B} to every member of R, sender included.
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9001);
const rooms = new Map(); // room name -> Set of sockets
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, perMessageDeflate: false, clientTracking: false });
wss.on('listening', () => console.log(`ws peer listening on 127.0.0.1:${port}`));
wss.on('connection', (ws) => {
  const joined = new Set();
  ws.on('message', (data) => {
    let m;
    try { m = JSON.parse(data); } catch { return ws.close(1007); }
    if (m.op === 'join' && typeof m.room === 'string') {
      if (!rooms.has(m.room)) rooms.set(m.room, new Set());
      rooms.get(m.room).add(ws);
      joined.add(m.room);
      ws.send(JSON.stringify({ re: m.id, ok: { room: m.room } }));
    } else if (m.op === 'send' && joined.has(m.room)) {
      const out = JSON.stringify({ ev: 'message', room: m.room, body: m.body });
      for (const peer of rooms.get(m.room)) peer.send(out);
    }
  });
  ws.on('close', () => { for (const r of joined) { const s = rooms.get(r); s.delete(ws); if (!s.size) rooms.delete(r); } });
});
