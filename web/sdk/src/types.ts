// Wire types of Parley protocol v1 (docs/protocol.md). Field names are the wire names.

export type RequestId = number | string;
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface UserRef { id: string; name: string }

export interface Limits { max_frame: number; max_rooms: number; max_body: number }

export interface HelloOk {
  user: UserRef;
  conn: string;
  session?: string;
  resume_token?: string;
  resumed?: boolean;
  rooms?: { room: string; seq: number }[];
  server: string;
  limits: Limits;
}

export interface JoinOk {
  room: string;
  seq: number;
  recovered?: boolean;
  replayed?: number;
  missing?: { from: number; to: number };
}

export interface SendOk { room: string; seq: number; mid: string; ts: number; duplicate?: boolean }

export interface HistoryOk { room: string; messages: MessageEvent[]; more: boolean }

export interface ConnMeta { conn: string | null; client: string; since: number }
export interface PresenceMemberWire { user: UserRef; since: number; connections: ConnMeta[] }
export interface UserStatusWire { user: UserRef; online: boolean; last_seen: number | null }

export interface PresenceRoomOk { room: string; members: PresenceMemberWire[] }
export interface PresenceUsersOk { users: UserStatusWire[] }

export interface RoomListEntry { room: string; seq: number; read: number; unread: number }
export interface RoomsOk { rooms: RoomListEntry[] }
export interface ReadOk { room: string; read: number }
export interface PingOk { ts: number }

/** A stored or live message (the `message` event). */
export interface MessageEvent {
  ev: 'message';
  room: string;
  seq: number;
  mid: string;
  ts: number;
  from: UserRef;
  body: Json;
  cmid: string;
}
export interface JoinEvent { ev: 'join'; room: string; user: UserRef }
export interface LeaveEvent { ev: 'leave'; room: string; user: UserRef }
export interface PresenceEvent { ev: 'presence'; user: UserRef; online: boolean; last_seen: number | null }
export interface TypingEvent { ev: 'typing'; room: string; users: UserRef[] }
export interface ReadEvent { ev: 'read'; room: string; seq: number }
export interface KickedEvent { ev: 'kicked'; room: string; reason: string }

export type ServerEvent = MessageEvent | JoinEvent | LeaveEvent | PresenceEvent | TypingEvent | ReadEvent | KickedEvent;

export interface ErrorBody { code: string; msg: string; retry_after?: number }
export interface ReplyFrame { re: RequestId | null; ok?: Record<string, unknown>; err?: ErrorBody }

/** Requests and their replies, keyed by op. */
export interface Ops {
  hello: { req: { token?: string; client?: string; resume?: string }; res: HelloOk };
  join: { req: { room: string; since?: number }; res: JoinOk };
  leave: { req: { room: string; forget?: boolean }; res: { room: string } };
  send: { req: { room: string; body: Json; cmid: string }; res: SendOk };
  history: { req: { room: string; before?: number; after?: number; limit?: number }; res: HistoryOk };
  typing: { req: { room: string; active: boolean }; res: Record<string, never> };
  presence: { req: { room: string } | { users: string[] }; res: PresenceRoomOk & PresenceUsersOk };
  rooms: { req: Record<string, never>; res: RoomsOk };
  read: { req: { room: string; seq: number }; res: ReadOk };
  ping: { req: Record<string, never>; res: PingOk };
  refresh: { req: { token: string }; res: { exp: number | null } };
}
export type OpName = keyof Ops;
