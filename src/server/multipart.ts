// multipart/form-data bodies (the official clients' file uploads) via busboy: text fields and one file, with the
// server's body limit enforced while streaming.
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { HttpError } from './http.js';

export interface MultipartBody {
  fields: Map<string, string[]>;
  file: { field: string; filename: string; mimeType: string; bytes: Buffer } | null;
}

const MAX_FIELDS = 64;
const MAX_FIELD_BYTES = 64 * 1024;

export async function readMultipart(req: IncomingMessage, limit: number, fileField = 'file'): Promise<MultipartBody> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) throw new HttpError(400, 'invalid_request_error', `send multipart/form-data with the audio in a "${fileField}" part (got content-type ${JSON.stringify(type)})`, null, 'invalid_content_type');
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, 'invalid_request_error', `request body of ${declared} bytes exceeds the limit of ${limit}`, null, 'body_too_large');
  return new Promise<MultipartBody>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: limit, files: 1, fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES } });
    } catch (e) {
      reject(new HttpError(400, 'invalid_request_error', `malformed multipart body: ${(e as Error).message}`, null, 'invalid_multipart'));
      return;
    }
    const out: MultipartBody = { fields: new Map(), file: null };
    let failed: Error | null = null;
    const fail = (e: Error) => { if (!failed) { failed = e; req.unpipe(bb); req.resume(); reject(e); } };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) return fail(new HttpError(400, 'invalid_request_error', `form field ${name} is longer than ${MAX_FIELD_BYTES} bytes`, name, 'invalid_value'));
      const list = out.fields.get(name) ?? [];
      list.push(value);
      out.fields.set(name, list);
    });
    bb.on('file', (name, stream, info) => {
      if (name !== fileField || out.file) { stream.resume(); return fail(new HttpError(400, 'invalid_request_error', `unexpected file part "${name}"; send one file as "${fileField}"`, name, 'invalid_value')); }
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new HttpError(413, 'invalid_request_error', `uploaded file exceeds the limit of ${limit} bytes`, fileField, 'body_too_large')));
      stream.on('close', () => { out.file = { field: name, filename: info.filename ?? "", mimeType: info.mimeType, bytes: Buffer.concat(chunks) }; });
    });
    bb.on('filesLimit', () => fail(new HttpError(400, 'invalid_request_error', 'send exactly one file', fileField, 'invalid_value')));
    bb.on('fieldsLimit', () => fail(new HttpError(400, 'invalid_request_error', `more than ${MAX_FIELDS} form fields`, null, 'invalid_value')));
    bb.on('error', (e: Error) => fail(new HttpError(400, 'invalid_request_error', `malformed multipart body: ${e.message}`, null, 'invalid_multipart')));
    bb.on('close', () => { if (!failed) resolve(out); });
    req.pipe(bb);
  });
}
