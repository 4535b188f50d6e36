'use strict';
// Socket.IO v4 room-broadcast peer for bench/loadgen --target socketio. Usage: node socketio-server.js PORT
// WebSocket transport only, no compression. Events: "join" (room, ack) -> joins and acks with no arguments;
// "msg" {room, body} -> io.to(room).emit("msg", {room, body}): every member of the room, sender included.
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 9002);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'], perMessageDeflate: false, httpCompression: false, serveClient: false,
});
io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    if (typeof room === 'string') socket.join(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('msg', (m) => {
    if (m && typeof m.room === 'string' && socket.rooms.has(m.room)) io.to(m.room).emit('msg', m);
  });
});
httpServer.listen(port, '127.0.0.1', 4096, () => console.log(`socket.io peer listening on 127.0.0.1:${port}`));
