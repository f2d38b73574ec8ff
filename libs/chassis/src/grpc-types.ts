import type { BinaryWriter } from '@bufbuild/protobuf/wire';

/** The part of a ts-proto message codec the chassis uses. */
export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array): T;
  fromPartial(object: never): T;
}

export interface MethodDefinition<Req = unknown, Res = unknown> {
  readonly name: string;
  readonly requestType: MessageCodec<Req>;
  readonly responseType: MessageCodec<Res>;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** A ts-proto `outputServices=generic-definitions` service definition. */
export interface ServiceDefinition {
  readonly name: string;
  readonly fullName: string;
  // Codecs are invariant in their message type, so "any definition" needs any.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly methods: Readonly<Record<string, MethodDefinition<any, any>>>;
}

export type RequestOf<M> = M extends MethodDefinition<infer Req, unknown> ? Req : never;
export type ResponseOf<M> = M extends MethodDefinition<unknown, infer Res> ? Res : never;

type Builtin = Date | ((...args: never[]) => unknown) | Uint8Array | string | number | boolean | undefined;
/** What handlers may return and callers may send: missing fields take proto defaults. */
export type DeepPartial<T> = T extends Builtin
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : T extends { $case: string }
      ? { [K in keyof T]?: DeepPartial<T[K]> } & { $case: T['$case'] }
      : T extends object
        ? { [K in keyof T]?: DeepPartial<T[K]> }
        : Partial<T>;

export function methodPath(service: ServiceDefinition, method: MethodDefinition): string {
  return `/${service.fullName}/${method.name}`;
}

export function serializer<T>(codec: MessageCodec<T>): (value: DeepPartial<T>) => Buffer {
  return (value) => Buffer.from(codec.encode(codec.fromPartial(value as never)).finish());
}

export function deserializer<T>(codec: MessageCodec<T>): (bytes: Buffer) => T {
  return (bytes) => codec.decode(bytes);
}
