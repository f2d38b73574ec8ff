import { runService } from '@ledgerly/chassis';
import { identity } from './service.js';

runService(identity);
