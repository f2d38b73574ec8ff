import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';

/**
 * grpc.health.v1.Health/Check, as any health probe calls it (the standard
 * protocol, not one of our contracts): HealthCheckRequest { string service = 1 },
 * HealthCheckResponse { ServingStatus status = 1 } with SERVING = 1.
 */
interface CheckRequest {
  service: string;
}
interface CheckResponse {
  status: number;
}

const CheckRequest = {
  encode: (m: CheckRequest, w = new BinaryWriter()) => (m.service ? w.uint32(10).string(m.service) : w),
  decode: (input: Uint8Array): CheckRequest => {
    const r = new BinaryReader(input);
    const m = { service: '' };
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === 1) m.service = r.string();
      else r.skip(tag & 7);
    }
    return m;
  },
  fromPartial: (o: Partial<CheckRequest>): CheckRequest => ({ service: o.service ?? '' }),
};

const CheckResponse = {
  encode: (m: CheckResponse, w = new BinaryWriter()) => (m.status ? w.uint32(8).int32(m.status) : w),
  decode: (input: Uint8Array): CheckResponse => {
    const r = new BinaryReader(input);
    const m = { status: 0 };
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 === 1) m.status = r.int32();
      else r.skip(tag & 7);
    }
    return m;
  },
  fromPartial: (o: Partial<CheckResponse>): CheckResponse => ({ status: o.status ?? 0 }),
};

export const HealthDefinition = {
  name: 'Health',
  fullName: 'grpc.health.v1.Health',
  methods: {
    check: { name: 'Check', requestType: CheckRequest, responseType: CheckResponse, requestStream: false, responseStream: false },
  },
} as const;
