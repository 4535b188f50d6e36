export { createParleyClient, ParleyClient, RoomRegistry, RoomListStore } from './client.js';
export type {
  ClientOptions, ClientEvents, ConnectionState, ConnectionStatus, CloseReason, GetToken, TokenReason, PendingMessage,
  PendingStatus, ReconnectOptions, RecoveredEvent, RoomListState, StatusChange, WebSocketConstructor, WebSocketLike,
} from './client.js';
export { Room, RoomMessages, RoomPresence, RoomTyping } from './room.js';
export type {
  CaughtUpEvent, GapEvent, MessagesState, PresenceEvents, PresenceMember, PresenceState, RoomEvents, RoomOptions, RoomStatus,
  TypingState, UserStatus,
} from './room.js';
export { ParleyError, ParleyUnauthorizedError, toParleyError } from './errors.js';
export type { ParleyErrorCode, ServerErrorCode, ClientErrorCode } from './errors.js';
export { jsonCodec, msgpackCodec, getCodec } from './codec.js';
export type { Codec, CodecName } from './codec.js';
export { fullJitterDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { uuidv7 } from './uuid.js';
export { Store, Emitter } from './emitter.js';
export type * from './types.js';
