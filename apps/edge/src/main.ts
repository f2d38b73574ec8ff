import { runService } from '@ledgerly/chassis';
import { edge } from './service.js';

runService(edge);
