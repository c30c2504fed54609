// The seed's example 2 server ("TCP时间戳服务器验证"), on Sesame: challenge each client with 32
// random bytes, expect the raw HMAC back, then answer every chunk with `[ctime] chunk`.
//
//   npm run build && node examples/seed2-server.js [--digest md5] [--port 9527]
import { compatServerProfile } from '../dist/compat/index.js';
import { SesameServer, timestampService } from '../dist/index.js';
import { exampleOptions } from './options.js';

const { url, digest } = exampleOptions();
const secret = Buffer.from('芝麻开门', 'utf8'); // the seed's key, as in the original

const server = new SesameServer({
  listen: url,
  profile: compatServerProfile({ profile: 'seed', secret, digest }),
  handler: timestampService, // `[ctime] message` for every chunk, as the original's loop
});
server.on('auth', (event) => {
  console.log(`新连接[${event.remote}]`);
  console.log('开始验证新链接的合法性');
  console.log(event.ok ? '链接已通过验证,开始通信' : '链接非法,关闭');
});
console.error(`listening on ${await server.listen()}`);
