//! Wire codec: a getData request framed, split and decoded as the server reads it; a setData and
//! a create request decoded; a getData reply (header, data, stat) encoded.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use corral::proto::codes::{op, Code};
use corral::proto::jute::{Reader, Writer};
use corral::proto::records::{put_reply_header, Acl, Request, Stat};
use corral::proto::{finish_frame, split_frame, start_frame, Frame};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn frame(opcode: i32, body: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut b = BytesMut::new();
    let at = start_frame(&mut b);
    b.put_i32(7);
    b.put_i32(opcode);
    body(&mut b);
    finish_frame(&mut b, at);
    b
}

/// Split one frame off a buffer and decode its request, as a connection's reader does.
fn decode_one(wire: &BytesMut) -> Request {
    let mut buf = wire.clone();
    let Frame::Payload(p) = split_frame(&mut buf, 1 << 20) else {
        panic!("whole frame")
    };
    let mut r = Reader::new(p);
    let _xid = r.i32().unwrap();
    let opcode = r.i32().unwrap();
    Request::decode(opcode, &mut r).unwrap()
}

fn bench(c: &mut Criterion) {
    let payload = vec![b'x'; 100];
    let get = frame(op::GET_DATA, |b| {
        b.put_jstring("/loadgen/k/123");
        b.put_jbool(false);
    });
    let set = frame(op::SET_DATA, |b| {
        b.put_jstring("/loadgen/k/123");
        b.put_jbuffer(&payload);
        b.put_i32(-1);
    });
    let create = frame(op::CREATE, |b| {
        b.put_jstring("/loadgen/seq/lock-");
        b.put_jbuffer(&payload);
        Acl::encode_list(&Acl::open_unsafe(), b);
        b.put_i32(3);
    });
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode getData request", |b| {
        b.iter(|| black_box(decode_one(black_box(&get))))
    });
    g.bench_function("decode setData request (100 B)", |b| {
        b.iter(|| black_box(decode_one(black_box(&set))))
    });
    g.bench_function("decode create request (100 B, open ACL)", |b| {
        b.iter(|| black_box(decode_one(black_box(&create))))
    });
    g.bench_function("encode getData request", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let at = start_frame(&mut out);
            out.put_i32(7);
            out.put_i32(op::GET_DATA);
            out.put_jstring(black_box("/loadgen/k/123"));
            out.put_jbool(false);
            finish_frame(&mut out, at);
            black_box(out.len())
        })
    });
    g.bench_function("encode getData reply (100 B + stat)", |b| {
        let mut out = BytesMut::with_capacity(4096);
        let stat = Stat {
            czxid: 5,
            mzxid: 9,
            data_length: 100,
            ..Stat::default()
        };
        b.iter(|| {
            out.clear();
            let at = start_frame(&mut out);
            put_reply_header(&mut out, 7, 42, Code::Ok);
            out.put_jbuffer(black_box(&payload));
            stat.encode(&mut out);
            finish_frame(&mut out, at);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
