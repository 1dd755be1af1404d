// Writes the jwt_verify seeds: tokens for the fuzz target's secret and clock
// (fuzz/jwt_verify.cpp), each valid for one verifier or refused for one reason.
// Usage: node fuzz/jwt_seeds.mjs   (rewrites fuzz/corpus/jwt_verify/*.jwt)
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const secret = 'claps-fuzz-secret-0123456789abcdef';
const now = 1700000000;
const dir = new URL('./corpus/jwt_verify/', import.meta.url);

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function token(claims, { header = { alg: 'HS256', typ: 'JWT' }, hash = 'sha256', key = secret, raw } = {}) {
  const signed = `${b64(raw?.header ?? header)}.${b64(raw?.claims ?? claims)}`;
  return `${signed}.${hash ? createHmac(hash, key).update(signed).digest('base64url') : ''}`;
}

const strict = { iss: 'https://issuer.example', aud: 'claps-web' };
const seeds = {
  valid: token({ sub: 'alice', exp: now + 3600 }),
  valid_strict: token({ sub: 'alice', exp: now + 1800, ...strict }),
  valid_strict_aud_array: token({ sub: 'bob', exp: now + 60, iss: strict.iss, aud: ['other', 'claps-web'] }),
  valid_nbf: token({ sub: 'alice', exp: now + 60, nbf: now - 10 }),
  valid_in_leeway: token({ sub: 'alice', exp: now - 20, ...strict }),
  valid_no_typ: token({ sub: 'a.b_c:d-e', exp: now + 60 }, { header: { alg: 'HS256' } }),
  nbf_future: token({ sub: 'alice', exp: now + 3600, nbf: now + 1000 }),
  expired: token({ sub: 'alice', exp: now - 100 }),
  no_exp: token({ sub: 'alice' }),
  exp_string: token({ sub: 'alice', exp: String(now + 60) }),
  exp_huge: token({ sub: 'alice', iss: strict.iss }, { raw: { header: { alg: 'HS256' }, claims: `{"sub":"alice","exp":9223372036854775807}` } }),
  exp_negative: token({ sub: 'alice' }, { raw: { header: { alg: 'HS256' }, claims: `{"sub":"alice","exp":-9223372036854775808}` } }),
  exp_float: token({ sub: 'alice', exp: now + 60.5 }),
  lives_too_long: token({ sub: 'alice', exp: now + 8 * 24 * 3600 }),
  sub_invalid: token({ sub: 'bob smith', exp: now + 60 }),
  sub_missing: token({ exp: now + 60 }),
  sub_number: token({ sub: 5, exp: now + 60 }),
  wrong_iss: token({ sub: 'alice', exp: now + 60, iss: 'https://evil.example', aud: 'claps-web' }),
  wrong_aud: token({ sub: 'alice', exp: now + 60, iss: strict.iss, aud: ['claps'] }),
  alg_none: token({ sub: 'alice', exp: now + 60 }, { header: { alg: 'none' }, hash: null }),
  alg_hs384: token({ sub: 'alice', exp: now + 60 }, { header: { alg: 'HS384' }, hash: 'sha384' }),
  alg_rs256_hmac: token({ sub: 'alice', exp: now + 60 }, { header: { alg: 'RS256' } }),
  alg_lowercase: token({ sub: 'alice', exp: now + 60 }, { header: { alg: 'hs256' } }),
  alg_missing: token({ sub: 'alice', exp: now + 60 }, { header: { typ: 'JWT' } }),
  wrong_secret: token({ sub: 'alice', exp: now + 60 }, { key: 'another-secret-of-32-bytes-or-more!' }),
  header_not_json: token({}, { raw: { header: 'not json', claims: { sub: 'alice', exp: now + 60 } } }),
  claims_not_object: token({}, { raw: { header: { alg: 'HS256' }, claims: '[1,2]' } }),
};
const valid = seeds.valid;
Object.assign(seeds, {
  bad_signature: valid.slice(0, -2) + (valid.at(-2) === 'A' ? 'B' : 'A') + valid.at(-1),
  two_segments: valid.slice(0, valid.lastIndexOf('.')),
  four_segments: `${valid}.${valid.split('.')[2]}`,
  padded_signature: `${valid}=`,
  // libjwt read the token up to the first NUL: the bytes after it went unchecked.
  nul_after_valid_token: `${valid}\0\0\0\0`,
  empty: '',
  dots: '..',
});
for (const [name, text] of Object.entries(seeds)) writeFileSync(new URL(`${name}.jwt`, dir), text);
